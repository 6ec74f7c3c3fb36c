"""``pynvml`` for a real ``dcim agent`` process in tests: the fake NVML whose GPUs keep their
power limits in a JSON file, so a limit outlives the process as it does on a real GPU.

Put this folder first on ``PYTHONPATH`` and set ``DCIM_FAKE_NVML_STATE`` to a file such as::

    {"devices": [{"uuid": "GPU-…", "limit_mw": 700000}, …]}

The agent then runs its shipped path (``NvmlBackend`` over ``import pynvml``) against
:class:`tests.fakes.fake_pynvml.FakeNvml`, which follows pynvml's API and error codes (its
signatures are checked against the real module in tests/collectors/test_nvml_backend.py).
Every accepted ``nvmlDeviceSetPowerManagementLimit`` is written back to the file; a test reads
the file to see what a GPU's limit is after the agent is gone.
"""

from __future__ import annotations

import json
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_shim = sys.modules[__name__]

# The real nvidia-ml-py supplies the error classes and constants the fake re-exports: import it
# by its own name with this folder out of the way, then take the name back.
del sys.modules["pynvml"]
_path = sys.path[:]
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
import pynvml as _real  # noqa: E402

from tests.fakes.fake_pynvml import FakeDevice, FakeNvml  # noqa: E402

sys.path[:] = _path
sys.modules["pynvml"] = _shim

NVMLError = _real.NVMLError
_STATE = os.environ["DCIM_FAKE_NVML_STATE"]


def _load() -> FakeNvml:
    with open(_STATE, encoding="utf-8") as f:
        devices = json.load(f)["devices"]
    return FakeNvml([FakeDevice(uuid=d["uuid"], limit_mw=int(d["limit_mw"]),
                                pci_bus_id=f"00000000:{18 + i:02X}:00.0") for i, d in enumerate(devices)])


def _save() -> None:
    data = {"devices": [{"uuid": d.uuid, "limit_mw": d.limit_mw} for d in _fake.devices]}
    tmp = f"{_STATE}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
    os.replace(tmp, _STATE)


_fake = _load()


def nvmlDeviceSetPowerManagementLimit(handle, limit):  # noqa: N802 - pynvml's name
    out = _fake.nvmlDeviceSetPowerManagementLimit(handle, limit)
    _save()
    return out


def __getattr__(name: str):
    return getattr(_fake, name)
