#!/usr/bin/env bash
# One entry point for a fresh Debian machine with only Python 3.11+:
#   ./dcim.sh up [dcim up options]   set up, then run the whole product on the demo facility
#   ./dcim.sh test [pytest options]  set up (system packages included), then run every test
#   ./dcim.sh setup                  only set up the virtual environment
#   ./dcim.sh <any dcim command>     run a dcim command inside the environment
set -euo pipefail
cd "$(dirname "$0")"

VENV=${DCIM_VENV:-.venv}
PY=${PYTHON:-python3}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  echo "dcim.sh: need root (or sudo) to install: $*" >&2; return 1; fi; }

apt_install() {
  # Install only what is missing, so a warm machine pays nothing.
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "dcim.sh: installing Debian packages: ${missing[*]}" >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

setup_venv() {
  local extra=${1:-}
  if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "dcim.sh: Python 3.11+ is required ($PY is $("$PY" --version 2>&1))" >&2; exit 1
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV" 2>/dev/null || { apt_install python3-venv; rm -rf "$VENV"; "$PY" -m venv "$VENV"; }
  fi
  local stamp="$VENV/.dcim-installed$extra"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
    "$VENV/bin/python" -m pip install -q -c constraints.txt -e ".$extra"
    touch "$stamp"
  fi
}

cmd=${1:-up}
[ $# -gt 0 ] && shift
case "$cmd" in
  setup)
    setup_venv "[test]" ;;
  up)
    setup_venv
    exec "$VENV/bin/dcim" up "$@" ;;
  test)
    # Real servers for the tests: influxd, Net-SNMP tools and snmpd, Chromium and its driver,
    # CJK fonts so Korean renders in the browser tests; Slurm (munge, slurmctld, slurmd, slurmrestd
    # with its JWT plugin) for the workload tests; Prometheus and Alertmanager for /metrics and alarms.
    apt_install influxdb snmp snmpd chromium chromium-driver fonts-noto-cjk procps slurmctld slurmd slurm-client munge slurmrestd slurm-wlm-jwt-plugin prometheus prometheus-alertmanager
    setup_venv "[test]"
    set +e
    "$VENV/bin/python" -m pytest "$@"
    rc=$?
    [ $rc -eq 5 ] && { echo "dcim.sh: pytest collected no tests" >&2; exit 1; }
    exit $rc ;;
  *)
    setup_venv
    exec "$VENV/bin/dcim" "$cmd" "$@" ;;
esac
