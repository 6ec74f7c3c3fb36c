"""Bad input never crashes anything and never shows a traceback.

* Configs: a table *generated* from deploy/demo.toml: every numeric field set to a negative, a
  huge, a string, a boolean, NaN and infinity, and every period or timeout (``*_s``) to 1e-9; an
  unknown key in every table; every reference (rack, room, tenant, credentials) pointed at a name
  that does not exist; every device's SNMP address duplicated. Each must give a ConfigError naming
  the key; a sample goes through the real ``dcim check`` command (exit 2, the key on stderr, no
  traceback).
* SNMP: a tiny UDP server on 127.0.0.1 answers garbage, truncated packets, wrong PDU types,
  lying BER lengths, 64 KiB datagrams and oversized values; the poller reports a clean error
  or a value and keeps working.
* Dashboard: URLs with bad parameters give a clean page: no 500, no traceback text.
"""

from __future__ import annotations

import asyncio
import copy
import math
import os
import socket
import subprocess
import threading
import tomllib

import pytest
import tomli_w

from dcim.config import ConfigError, parse_config
from tests.faults.conftest import PY, REPO, dcim_env

DEMO = tomllib.loads((REPO / "deploy" / "demo.toml").read_text(encoding="utf-8"))


# --- the generated table of bad configs ---------------------------------------------------------


def _fmt(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else ("." if out else "") + p
    return out or "(top level)"


def _walk(node, path=()):
    if isinstance(node, dict):
        yield "table", path, node
        for k, v in node.items():
            yield from _walk(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, path + (i,))
    else:
        yield "leaf", path, node


def _set(path, value):
    def apply(d):
        node = d
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = value
    return apply


# Numbers for which a negative value is meaningful (a simulator seed is any integer).
NEGATIVE_OK = {("simulator", "seed")}
HUGE_OK = {("simulator", "seed")}
MAP_TABLES = {("snmp", "credentials"), ("workload", "tenants"), ("workload", "job_classes")}  # keys are names
REFERENCE_KEYS = {"rack": "rack", "room": "room", "tenant": "tenant", "credentials": "[snmp.credentials."}
REFERENCE_LISTS = {"racks": "rack", "rooms": "room"}


def _shape(path):
    return tuple("#" if isinstance(p, int) else p for p in path)


def generate() -> list[tuple[str, object, str, str]]:
    """(id, mutation, key path that must be named, fragment of the reason)."""
    cases = []
    seen_numeric: set = set()
    for kind, path, value in _walk(DEMO):
        key = _fmt(path)
        if kind == "table":
            # a map of named entries takes a new name, so the entry itself must be refused
            reason = "" if path in MAP_TABLES else "unknown key"
            cases.append((f"unknown key in {key}", _set(path + ("bogus_key",), 1), _fmt(path + ("bogus_key",)),
                          reason))
            continue
        if isinstance(value, bool):
            cases.append((f"{key} = 'yes'", _set(path, "yes"), key, "valid boolean"))
            continue
        if isinstance(value, (int, float)):
            shape = _shape(path)
            # every numeric field of every section; repeated rows (racks, PDUs) once each kind
            if shape in seen_numeric:
                continue
            seen_numeric.add(shape)
            bad = [("string", "lots"), ("boolean", True), ("NaN", math.nan), ("infinity", math.inf)]
            if shape not in NEGATIVE_OK:
                bad.append(("negative", -1))
            if shape not in HUGE_OK:
                bad.append(("huge", 10**12))
            if str(path[-1]).endswith("_s"):
                # a period or timeout of a nanosecond spins a loop or switches a rail off
                bad.append(("tiny", 1e-9))
            for what, v in bad:
                cases.append((f"{key} {what}", _set(path, v), key, ""))
            continue
        if isinstance(value, str):
            last = path[-1]
            parent = path[-2] if len(path) > 1 else None
            if last in REFERENCE_KEYS and not (last == "room" and path[0] == "rooms"):
                cases.append((f"{key} -> missing", _set(path, "no-such-thing"), key, "no-such-thing"))
            elif isinstance(last, int) and parent in REFERENCE_LISTS and path[0] in ("cooling", "ups"):
                cases.append((f"{key} -> missing", _set(path, "no-such-thing"), key, "no-such-thing"))
    # duplicate SNMP addresses: every device reuses the address of the one before it
    devices = [(g, i) for g in ("pdus", "cooling", "ups", "meters") for i in range(len(DEMO.get(g, [])))]
    for (pg, pi), (g, i) in zip(devices, devices[1:]):
        prev = DEMO[pg][pi]["snmp"]

        def dup(d, g=g, i=i, prev=prev):
            d[g][i]["snmp"]["address"] = prev["address"]
            d[g][i]["snmp"]["port"] = prev.get("port", 161)
        cases.append((f"{g}[{i}] duplicate address", dup, f"{g}[{i}].snmp.address", "already used by"))
    # wrong types for the tables themselves
    for section in ("site", "store", "collectors", "optimizer", "dashboard", "simulator"):
        cases.append((f"{section} not a table", _set((section,), "oops"), section, ""))
    return cases


CASES = generate()


def test_the_generated_table_is_broad():
    kinds = {c[0].rsplit(" ", 1)[-1] for c in CASES}
    assert {"string", "negative", "huge", "boolean", "NaN", "infinity", "tiny"} <= kinds
    assert sum("unknown key" in c[0] for c in CASES) >= 20
    assert sum("missing" in c[0] for c in CASES) >= 40
    n_devices = sum(len(DEMO.get(g, [])) for g in ("pdus", "cooling", "ups", "meters"))
    assert sum("duplicate address" in c[0] for c in CASES) == n_devices - 1
    assert len(CASES) > 250


@pytest.mark.parametrize("desc,mutation,key,reason", CASES, ids=[c[0] for c in CASES])
def test_bad_config_is_refused_naming_the_key(desc, mutation, key, reason):
    data = copy.deepcopy(DEMO)
    mutation(data)
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    errors = info.value.errors
    named = [why for path, why in errors if path == key or path.startswith(key + ".") or path.startswith(key + "[")]
    assert named, f"{desc}: no error names {key!r}: {errors}"
    assert any(reason in why for why in named), f"{desc}: {named}"
    assert "Traceback" not in str(info.value)


def test_dcim_check_cli_on_a_sample_of_the_table(tmp_path):
    """One of each kind through the real command, in parallel: exit 2, the key named, no traceback."""
    sample, seen = [], set()
    for desc, mutation, key, _reason in CASES:
        kind = "unknown" if "unknown key" in desc else desc.rsplit(" ", 1)[-1]
        if kind in seen:
            continue
        seen.add(kind)
        data = copy.deepcopy(DEMO)
        mutation(data)
        path = tmp_path / f"bad{len(sample)}.toml"
        path.write_text(tomli_w.dumps(data))
        sample.append((desc, key, path))
    assert len(sample) >= 8
    procs = [(desc, key, subprocess.Popen([PY, "-m", "dcim.cli.main", "check", "--config", str(path)],
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                          env=dcim_env(), cwd=tmp_path))
             for desc, key, path in sample]
    for desc, key, proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, (desc, proc.returncode, out, err)
        assert key in err, (desc, key, err)
        assert "Traceback" not in err + out, (desc, err)


# --- malformed SNMP ----------------------------------------------------------------------------


def _ber_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _ber_len(len(body)) + body


def _request_id_and_varbinds(req: bytes) -> tuple[bytes, bytes, bytes]:
    """(community TLV, request-id TLV, varbind list TLV) of a v2c GET, by plain BER reading."""
    def read(buf, pos):
        tag, n = buf[pos], buf[pos + 1]
        pos += 2
        if n & 0x80:
            k = n & 0x7F
            n = int.from_bytes(buf[pos:pos + k], "big")
            pos += k
        return tag, pos, pos + n
    _, pos, _ = read(req, 0)
    _, s, e = read(req, pos)             # version
    _, cs, ce = read(req, e)             # community
    community = req[e:ce]
    _, ps, _ = read(req, ce)             # PDU
    _, rs, re_ = read(req, ps)           # request-id
    rid = req[ps:re_]
    _, s, e = read(req, re_)             # error-status
    _, s, e = read(req, e)               # error-index
    _, vs, ve = read(req, e)             # varbind list
    return community, rid, req[e:ve]


def _response(req: bytes, value_tlv=None, pdu_tag=0xA2, n_extra=0) -> bytes:
    community, rid, vbl = _request_id_and_varbinds(req)
    if value_tlv is not None:  # replace every value (NULL in the request) with value_tlv
        items, pos, body = [], 0, vbl[2:] if vbl[1] < 0x80 else vbl[2 + (vbl[1] & 0x7F):]
        while pos < len(body):
            n = body[pos + 1]
            hdr = 2
            if n & 0x80:
                k = n & 0x7F
                n = int.from_bytes(body[pos + 2:pos + 2 + k], "big")
                hdr += k
            vb = body[pos + hdr:pos + hdr + n]
            oid_len = vb[1] + 2
            items.append(_tlv(0x30, vb[:oid_len] + value_tlv))
            pos += hdr + n
        items += [_tlv(0x30, _tlv(0x06, b"\x2b\x06\x01") + value_tlv)] * n_extra
        vbl = _tlv(0x30, b"".join(items))
    pdu = _tlv(pdu_tag, rid + b"\x02\x01\x00\x02\x01\x00" + vbl)
    return _tlv(0x30, b"\x02\x01\x01" + community + pdu)


REPLIES = {
    "random garbage": lambda req: os.urandom(200),
    "empty datagram": lambda req: b"",
    "truncated response": lambda req: _response(req, _tlv(0x02, b"\x05"))[:-7],
    "echo of the request (wrong PDU type)": lambda req: req,
    "lying BER length": lambda req: b"\x30\x84\x7f\xff\xff\xff" + req[2:],
    "64 KiB of garbage": lambda req: os.urandom(65000),
    "64 KiB value": lambda req: _response(req, _tlv(0x04, b"A" * 60000)),
    "wrong value types": lambda req: _response(req, _tlv(0x40, b"\x7f\x00\x00\x01")),
    "extra varbinds": lambda req: _response(req, _tlv(0x02, b"\x01"), n_extra=20),
    "bad OID encoding": lambda req: _response(req, _tlv(0x06, b"\xff\xff")),
    "empty INTEGER": lambda req: _response(req, _tlv(0x02, b"")),
    "good": lambda req: _response(req, _tlv(0x02, b"\x2a")),
}


class EvilAgent:
    """UDP on 127.0.0.1; answers each request with REPLIES[self.mode]; counts what it saw."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.mode = "good"
        self.requests = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                req, addr = self.sock.recvfrom(65535)
            except OSError:
                continue
            self.requests += 1
            try:
                reply = REPLIES[self.mode](req)
            except Exception:  # a request we cannot parse (v3): garbage back
                reply = os.urandom(100)
            try:
                self.sock.sendto(reply, addr)
            except OSError:
                pass

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def evil():
    agent = EvilAgent()
    yield agent
    agent.close()


@pytest.mark.parametrize("fast", [True, False], ids=["fast-v2c", "pysnmp"])
def test_malformed_snmp_replies_do_not_crash_the_poller(evil, fast):
    from collectors.snmp.engine import Endpoint, Missing, SnmpError, SnmpPoller, V2c

    oids = ["1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.1.5.0"]
    ep = Endpoint("127.0.0.1", evil.port, V2c("public"), timeout_s=0.4, retries=0)
    outcomes = {}

    async def go():
        poller = SnmpPoller(fast_v2c=fast)
        try:
            for mode in REPLIES:
                evil.mode = mode
                try:
                    values = await asyncio.wait_for(poller.get(ep, oids), 5)
                    outcomes[mode] = ("ok", values)
                except SnmpError as exc:
                    outcomes[mode] = ("error", str(exc))
            evil.mode = "good"
            outcomes["good again"] = ("ok", await poller.get(ep, oids))
        finally:
            poller.close()

    asyncio.run(go())
    assert evil.requests >= len(REPLIES)
    for mode, (kind, detail) in outcomes.items():
        if kind == "ok":
            # whatever came back is a plain value or Missing, one per OID asked; never garbage
            assert set(detail) == set(oids), (mode, detail)
            for v in detail.values():
                assert isinstance(v, (int, str, Missing)), (mode, v)
        else:
            assert "Traceback" not in detail and len(detail) < 500, (mode, detail)
    # the obviously broken replies are errors, the good ones still read after all that
    for mode in ("random garbage", "empty datagram", "truncated response", "lying BER length",
                 "64 KiB of garbage", "echo of the request (wrong PDU type)"):
        assert outcomes[mode][0] == "error", (mode, outcomes[mode])
    assert outcomes["good"] == ("ok", {o: 42 for o in oids})
    assert outcomes["good again"] == ("ok", {o: 42 for o in oids})
    v = outcomes["64 KiB value"]
    assert v[0] == "error" or all(isinstance(x, str) and len(x) == 60000 for x in v[1].values()), v
    assert outcomes["wrong value types"][0] == "error" or all(
        isinstance(x, Missing) for x in outcomes["wrong value types"][1].values())


def test_malformed_replies_through_the_collector_are_a_failed_target(evil):
    """The whole SNMP collector over the evil agent: a failed target with a reason, bounded."""
    import time

    from collectors.snmp.collector import SnmpCollector
    from collectors.snmp.device import SnmpDevice
    from collectors.snmp.engine import Endpoint, SnmpPoller, V2c

    dev = SnmpDevice("evil-pdu", "pdu", Endpoint("127.0.0.1", evil.port, V2c("public"), timeout_s=0.4, retries=0),
                     {"site": "s", "room": "r", "rack": "R1", "pdu": "evil-pdu", "feed": "A"}, "auto")

    async def go():
        col = SnmpCollector([dev], poller=SnmpPoller())
        out = []
        try:
            for mode in ("random garbage", "64 KiB of garbage", "truncated response", "64 KiB value",
                         "wrong value types", "good"):
                evil.mode = mode
                t0 = time.monotonic()
                results = await col.poll(3.0)
                out.append((mode, time.monotonic() - t0, {r.target: r for r in results}))
        finally:
            await col.close()
        return out

    for mode, took, results in asyncio.run(go()):
        r = results["evil-pdu"]
        assert took < 3.0 + 1.0, (mode, took)
        assert not r.ok and r.error and "Traceback" not in r.error, (mode, r)


# --- dashboard URLs with bad parameters ---------------------------------------------------------


BAD_URLS = [
    "/?lang=xx", "/?lang=%00%ff", "/racks?rack=%3Cscript%3Ealert(1)%3C/script%3E", "/gpus?page=-5",
    "/gpus?page=abc&sort=%27%3B--", "/power?feed=Z", "/energy?period=9999Q9", "/nope/../../etc/passwd",
    "/download/report.csv?period=2026Q5", "/download/report.csv?period=2026Q3&by=%3Bdrop",
    "/download/report.csv?period=" + "9" * 5000, "/download/report.csv", "/health?x=" + "%" * 100,
    "/?kiosk=yes&lang=" + "k" * 10000, "/cooling?unit=%E0%A4%A", "/optimizer?since=-1e309",
    "/alarms?severity=%7B%7B7*7%7D%7D",
]


@pytest.fixture(scope="module")
def dash_client(tmp_path_factory):
    from dashboards.app import create_app
    from tests.dashboards import sitedata as S

    path = tmp_path_factory.mktemp("dash") / "s.sqlite"
    store = S.open_test_store(path)
    S.populate(store)
    app = create_app(S.make_config(), store)
    yield app
    store.close()


@pytest.mark.parametrize("url", BAD_URLS)
def test_dashboard_bad_parameters_give_a_clean_page(dash_client, url):
    client = dash_client.server.test_client()
    r = client.get(url)
    body = r.get_data(as_text=True)
    assert r.status_code < 500, (url, r.status_code, body[:500])
    assert "Traceback" not in body and "File \"/" not in body, url
    assert "<script>alert(1)" not in body


def test_dashboard_callbacks_with_bad_inputs_answer_cleanly(dash_client):
    """The update callbacks (what every open screen polls) with hostile pathname/search values."""
    import json

    client = dash_client.server.test_client()
    layout = client.get("/_dash-dependencies").get_json()
    assert layout
    hostile = ["?lang=%ff", "?" + "a=" * 2000, "?lang=ko&page=../../x", "?rack=%3Cimg%20onerror%3D1%3E"]
    paths = ["/", "/racks", "/gpus", "/nope", "/" + "x" * 3000]
    n = 0
    for dep in layout:
        inputs = dep["inputs"]
        if "{" in dep["output"] or not all(i["property"] in ("pathname", "search", "n_intervals") for i in inputs):
            continue  # pattern-matching callbacks: their page functions are called below
        for path in paths:
            for search in hostile:
                vals = {"pathname": path, "search": search, "n_intervals": 3}
                body = {"output": dep["output"], "outputs": _outputs(dep), "changedPropIds": [],
                        "inputs": [{**i, "value": vals[i["property"]]} for i in inputs],
                        "state": [{**s, "value": None} for s in dep.get("state", [])]}
                r = client.post("/_dash-update-component", data=json.dumps(body),
                                content_type="application/json")
                text = r.get_data(as_text=True)
                assert r.status_code in (200, 204), (dep["output"], path, search, r.status_code, text[:400])
                assert "Traceback" not in text
                n += 1
    assert n >= 20
    # what the pattern-matching refresh callback runs: every page's update() with the same values
    from dashboards.pages import make_ctx, registry

    for module in registry():
        for search in hostile:
            u = module.update(make_ctx(dash_client.data, search))
            assert set(u) >= {"v", "fig", "tbl"}


def _outputs(dep):
    out = dep["output"]
    if out.startswith("..") and out.endswith(".."):
        parts = out[2:-2].split("...")
    else:
        parts = [out]
    res = []
    for p in parts:
        ident, _, prop = p.rpartition(".")
        res.append({"id": ident, "property": prop})
    return res if len(res) > 1 else res[0]
