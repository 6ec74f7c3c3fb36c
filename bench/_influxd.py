"""A real InfluxDB 1.x server for the benchmarks and the tests.

``InfluxdProcess`` starts Debian's ``/usr/bin/influxd`` with a generated config in a temp
directory (meta, data and WAL there; HTTP and the RPC bind address on free 127.0.0.1
ports; reporting, monitor, UDP, graphite and friends off). ``stop()``/``start()`` restart it
on the same port and data dir, for outage tests. The tests' fixtures (tests/fixtures/influxd.py)
use this launcher, so it lives in one place and no benchmark imports test code.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

# DCIM_INFLUXD points elsewhere (a copied binary on a benchmark machine); Debian's by default.
INFLUXD = os.environ.get("DCIM_INFLUXD", "/usr/bin/influxd")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_CONFIG = """\
reporting-enabled = false
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{root}/meta"
  retention-autocreate = true
  logging-enabled = false
[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  wal-fsync-delay = "0s"
  query-log-enabled = false
  index-version = "inmem"
  cache-snapshot-write-cold-duration = "{snapshot_cold}"
[monitor]
  store-enabled = false
[subscriber]
  enabled = false
[retention]
  enabled = false
[shard-precreation]
  enabled = false
[continuous_queries]
  enabled = false
  log-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = {auth}
  log-enabled = false
  suppress-write-log = true
  pprof-enabled = false
  unix-socket-enabled = false
  max-body-size = 0
[logging]
  level = "warn"
  suppress-logo = true
[ifql]
  enabled = false
"""


class InfluxdProcess:
    """One influxd on loopback. ``url`` stays the same across stop()/start()."""

    def __init__(self, *, auth: bool = False, root: str | Path | None = None, snapshot_cold_s: float = 600):
        """*snapshot_cold_s*: idle seconds before the write cache is snapshotted to TSM files
        (influxd's default is 10 min; the benchmark shortens it to query TSM, as in steady state)."""
        if not os.access(INFLUXD, os.X_OK):
            raise RuntimeError(f"{INFLUXD} is not installed: run `./dcim.sh test` (it installs the "
                               "Debian 'influxdb' package) or `apt-get install influxdb`")
        self._own_root = root is None
        self.root = Path(root or tempfile.mkdtemp(prefix="dcim-influxd-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.http_port = free_port()
        self.rpc_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.config_path = self.root / "influxd.conf"
        self.config_path.write_text(_CONFIG.format(root=self.root, rpc_port=self.rpc_port,
                                                   http_port=self.http_port, auth=str(auth).lower(),
                                                   snapshot_cold=f"{int(snapshot_cold_s * 1000)}ms"))
        self.log_path = self.root / "influxd.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 30.0) -> InfluxdProcess:
        if self.proc is not None and self.proc.poll() is None:
            return self
        log = open(self.log_path, "ab")
        # Own process group, so a kill reaches nothing but this server.
        self.proc = subprocess.Popen([INFLUXD, "run", "-config", str(self.config_path)],
                                     stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"influxd exited with {self.proc.returncode}:\n{self._log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/ping", timeout=1) as resp:
                    if resp.status == 204:
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"influxd did not answer /ping within {timeout_s} s:\n{self._log_tail()}")

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL); the data dir stays for start()."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crash would."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)

    def close(self) -> None:
        self.stop()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def _log_tail(self, n_bytes: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-n_bytes:].decode("utf-8", "replace")
        except OSError:
            return "(no log)"

    def __enter__(self) -> InfluxdProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
