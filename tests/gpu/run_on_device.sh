#!/usr/bin/env bash
# Everything the NVML work checks on a real GPU machine, in one go. READ-ONLY on the GPU.
# Usage (repo root): OUT=/some/dir bash tests/gpu/run_on_device.sh   [wheels in .whl/ installed first]
set -u
OUT=${OUT:-/tmp/dcim-gpu-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD"
PY=${PY:-python3}
echo "== host"; date -u; uname -r; $PY --version
nvidia-smi --query-gpu=name,driver_version,pci.bus_id,persistence_mode,power.limit,power.min_limit,power.max_limit,ecc.mode.current --format=csv | tee "$OUT/smi.csv"
$PY -c 'import pynvml, pydantic, numpy; print("pynvml", pynvml.__file__, "pydantic", pydantic.VERSION, "numpy", numpy.__version__)'
echo "== probe (json)"
if [ -f dcim/cli/cmd_probe.py ]; then
  $PY -m dcim.cli.main probe --nvml --format json > "$OUT/probe.jsonl"; echo "probe rc=$? (dcim CLI: python -m dcim.cli.main probe --nvml --format json)"
else
  $PY -c 'import sys; from collectors.gpu.probe import probe_nvml; sys.exit(probe_nvml("json"))' > "$OUT/probe.jsonl"; echo "probe rc=$? (probe_nvml; CLI command absent)"
fi
cat "$OUT/probe.jsonl"
echo "== probe (table)"
$PY -c 'import sys; from collectors.gpu.probe import probe_nvml; sys.exit(probe_nvml("table"))'; echo "table rc=$?"
echo "== fake-based unit tests"
$PY -m pytest -q -p no:cacheprovider tests/collectors/test_nvml_backend.py tests/collectors/test_gpu_collector.py 2>&1 | tail -3
echo "== gpu tests (collector soak ${DCIM_GPU_SOAK_S:-60} s into SQLite)"
DCIM_GPU_SOAK_S=${DCIM_GPU_SOAK_S:-60} DCIM_GPU_REPORT="$OUT/gpu_report.json" \
  $PY -m pytest -m gpu -q -rs -s -p no:cacheprovider tests/gpu 2>&1 | tee "$OUT/pytest_gpu.log" | grep -v "^GpuIdentity" | tail -25
echo "== bench"
$PY bench/nvml_sample.py --runs 200 --smi-runs 10 --json "$OUT/bench.json" 2>&1 | tee "$OUT/bench.txt"; echo "bench rc=${PIPESTATUS[0]}"
echo "== after: limits unchanged?"
nvidia-smi --query-gpu=power.limit,persistence_mode --format=csv
