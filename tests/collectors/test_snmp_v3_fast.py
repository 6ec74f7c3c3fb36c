"""SNMPv3 on the client's one code path (collectors/snmp/usm.py, client.py): RFC 3414's key test
vectors, and interop with the real Net-SNMP agent (Debian's snmpd) over UDP on loopback, with
users for SHA-1/SHA-256/SHA-384/SHA-512 x AES-128/192/256. Expected values come from Net-SNMP's
own tools (snmpbulkwalk) or the RFC, never from the client under test."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time

import pytest

from collectors.snmp import usm
from collectors.snmp.engine import SYS_OBJECT_ID, V3, Endpoint, SnmpError, SnmpPoller, V2c

SNMPD = "/usr/sbin/snmpd"
AUTH_KEY, PRIV_KEY = "authpass-v3fast-1", "privpass-v3fast-1"
COMMUNITY = "v3fast-community"
NET_SNMP_SYS_OBJECT_ID = "1.3.6.1.4.1.8072.3.2.10"  # netSnmpAgentOIDs.linux: what snmpd reports
# (user, our protocol names, snmpd's names)
USERS = [("u-sha-aes", "SHA", "AES", "SHA", "AES"), ("u-sha256-aes", "SHA256", "AES", "SHA-256", "AES"),
         ("u-sha512-aes", "SHA512", "AES", "SHA-512", "AES"),
         ("u-sha-aes256", "SHA", "AES256", "SHA", "AES-256"),
         ("u-sha256-aes256", "SHA256", "AES256", "SHA-256", "AES-256"),
         ("u-sha512-aes256", "SHA512", "AES256", "SHA-512", "AES-256"),
         ("u-sha384-aes192", "SHA384", "AES192", "SHA-384", "AES-192")]


class Snmpd:
    """Debian's snmpd on a free loopback port, with a v2c community and the USERS (authPriv)."""

    def __init__(self, tmp):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        users = "".join(f'createUser {u} {a} "{AUTH_KEY}" {x} "{PRIV_KEY}"\nrouser {u} priv\n'
                        for u, _, _, a, x in USERS)
        conf = tmp / "snmpd.conf"
        conf.write_text(f"rocommunity {COMMUNITY} 127.0.0.0/8\n{users}")
        (tmp / "persist").mkdir()
        self.log = tmp / "snmpd.log"
        self.proc = subprocess.Popen([SNMPD, "-f", "-Lf", str(self.log), "-C", "-c", str(conf), "-p",
                                      str(tmp / "snmpd.pid"), f"udp:127.0.0.1:{self.port}"],
                                     env={**os.environ, "SNMP_PERSISTENT_DIR": str(tmp / "persist"), "MIBS": ""},
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if self.net_snmp_walk("1.3.6.1.2.1.1.2"):
                return
            time.sleep(0.1)
        self.close()
        raise RuntimeError(f"snmpd did not start: {self.log.read_text()[-500:]}")

    def net_snmp_walk(self, root: str) -> list[str]:
        """OIDs under *root* as Net-SNMP's snmpbulkwalk (v2c) reads them."""
        out = subprocess.run(["snmpbulkwalk", "-v2c", "-c", COMMUNITY, "-On", "-Oq", "-t", "1", "-r", "0",
                              f"127.0.0.1:{self.port}", root], capture_output=True, text=True,
                             env={**os.environ, "MIBS": ""}).stdout
        return [line.split(" ", 1)[0].lstrip(".") for line in out.splitlines() if line.startswith(".")]

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def snmpd(tmp_path_factory):
    if not os.path.exists(SNMPD) or not shutil.which("snmpbulkwalk"):
        pytest.fail("Net-SNMP's snmpd and snmpbulkwalk are needed (./dcim.sh test installs them)")
    agent = Snmpd(tmp_path_factory.mktemp("snmpd"))
    yield agent
    agent.close()


def run(coro):
    return asyncio.run(coro)


# --- RFC 3414 A.3 test vectors ----------------------------------------------------------------------


ENGINE_ID = bytes.fromhex("000000000000000000000002")


@pytest.mark.parametrize("hash_name,ku,kul", [
    ("md5", "9faf3283884e92834ebc9847d8edd963", "526f5eed9fcce26f8964c2930787d82b"),
    ("sha1", "9fb5cc0381497b3793528939ff788d5d79145211", "6695febc9288e36282235fc7151f128497b38f3f"),
])
def test_password_to_key_and_localisation_match_rfc3414(hash_name, ku, kul):
    got_ku = usm.password_to_key(b"maplesyrup", hash_name)
    assert got_ku.hex() == ku
    assert usm.localize(got_ku, ENGINE_ID, hash_name).hex() == kul


def test_unknown_protocol_is_a_clear_error_naming_it(snmpd):
    auth = V3("u-sha-aes", AUTH_KEY, PRIV_KEY, "SHA", "BLOWFISH")
    with pytest.raises(SnmpError) as err:
        run(_get(Endpoint("127.0.0.1", snmpd.port, auth, timeout_s=1.0, retries=0), [SYS_OBJECT_ID]))
    assert "unsupported v3 priv protocol BLOWFISH" in err.value.reason and PRIV_KEY not in str(err.value)


# --- interop with Net-SNMP's agent ------------------------------------------------------------------


async def _get(ep, oids):
    poller = SnmpPoller()
    try:
        return await poller.get(ep, oids)
    finally:
        poller.close()


@pytest.mark.parametrize("user,auth_p,priv_p", [(u, a, x) for u, a, x, _, _ in USERS], ids=[u for u, *_ in USERS])
def test_authpriv_reads_net_snmp_agent(snmpd, user, auth_p, priv_p):
    """GET and GETBULK walk in authPriv: the same OIDs Net-SNMP's own walk lists (v2c), and
    snmpd's sysObjectID."""
    ep = Endpoint("127.0.0.1", snmpd.port, V3(user, AUTH_KEY, PRIV_KEY, auth_p, priv_p), timeout_s=2.0,
                  retries=1, max_repetitions=7)

    async def go():
        poller = SnmpPoller()
        try:
            got = await poller.get(ep, [SYS_OBJECT_ID, "1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.1.99.0"])
            rows = await poller.walk(ep, "1.3.6.1.2.1.1")
            return got, rows, poller.stats()
        finally:
            poller.close()

    got, rows, stats = run(go())
    assert got[SYS_OBJECT_ID] == NET_SNMP_SYS_OBJECT_ID
    assert isinstance(got["1.3.6.1.2.1.1.3.0"], int) and got["1.3.6.1.2.1.1.3.0"] > 0
    assert not got["1.3.6.1.2.1.1.99.0"]  # noSuchObject, as Missing
    assert [o for o, _ in rows] == snmpd.net_snmp_walk("1.3.6.1.2.1.1")
    assert stats["replies_rejected"] == 0 and stats["replies_garbled"] == 0


def test_v2c_and_v3_on_one_socket_read_the_same(snmpd):
    oids = snmpd.net_snmp_walk("1.3.6.1.2.1.1")
    oids = [o for o in oids if o != "1.3.6.1.2.1.1.3.0"]  # sysUpTime moves between reads

    async def go():
        poller = SnmpPoller()
        try:
            v2 = poller.get(Endpoint("127.0.0.1", snmpd.port, V2c(COMMUNITY), max_oids=5), oids)
            v3 = poller.get(Endpoint("127.0.0.1", snmpd.port, V3("u-sha256-aes256", AUTH_KEY, PRIV_KEY, "SHA256",
                                                                 "AES256"), max_oids=5), oids)
            return await asyncio.gather(v2, v3), poller.local_address
        finally:
            poller.close()

    (v2, v3), _ = run(go())
    assert v2 == v3 and len(v2) == len(oids) > 5


@pytest.mark.parametrize("auth,why", [
    (V3("u-sha-aes", "wrong-auth-key-1", PRIV_KEY, "SHA", "AES"), "v3 auth failure: wrong digest"),
    (V3("u-sha256-aes", AUTH_KEY, PRIV_KEY, "SHA", "AES"), "v3 auth failure: wrong digest"),  # wrong protocol
    (V3("nobody-here", AUTH_KEY, PRIV_KEY, "SHA", "AES"), "v3 auth failure: unknown user"),
    (V3("u-sha-aes", AUTH_KEY, "wrong-priv-key-9", "SHA", "AES"), "timeout"),  # snmpd drops what it cannot decrypt
])
def test_auth_failures_against_net_snmp_are_named_and_secret_free(snmpd, auth, why):
    with pytest.raises(SnmpError) as err:
        run(_get(Endpoint("127.0.0.1", snmpd.port, auth, timeout_s=0.5, retries=0), [SYS_OBJECT_ID]))
    assert err.value.reason.startswith(why), err.value.reason
    assert auth.auth_key not in str(err.value) and auth.priv_key not in str(err.value)


def test_agent_restart_is_followed(tmp_path):
    """snmpd restarted: the client follows the agent's Report (a new engine ID: discovered again;
    the same one a boot later: resynchronised) and the next poll reads, with no error."""
    agent = Snmpd(tmp_path)
    ep = Endpoint("127.0.0.1", agent.port, V3("u-sha-aes", AUTH_KEY, PRIV_KEY, "SHA", "AES"), timeout_s=1.0,
                  retries=1)

    async def go():
        nonlocal agent
        poller = SnmpPoller()
        try:
            first = await poller.get(ep, [SYS_OBJECT_ID])
            clock0 = next(iter(poller.client._clocks.values()))
            engine0 = (clock0.engine_id, clock0.boots)
            agent.proc.terminate()
            agent.proc.wait(10)
            restarted = subprocess.Popen(agent.proc.args, env={**os.environ, "SNMP_PERSISTENT_DIR":
                                                               str(tmp_path / "persist"), "MIBS": ""},
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            agent.proc = restarted
            for _ in range(100):
                if agent.net_snmp_walk("1.3.6.1.2.1.1.2"):
                    break
                await asyncio.sleep(0.1)
            second = await poller.get(ep, [SYS_OBJECT_ID])
            clock1 = next(iter(poller.client._clocks.values()))
            return first, second, engine0, (clock1.engine_id, clock1.boots)
        finally:
            poller.close()

    try:
        first, second, engine0, engine1 = run(go())
    finally:
        agent.close()
    assert first == second == {SYS_OBJECT_ID: NET_SNMP_SYS_OBJECT_ID}
    # a new engine ID (snmpd made one: an unauthenticated unknownEngineID Report, rediscovered)
    # or the same one a boot later (an authenticated notInTimeWindow Report, resynchronised)
    assert engine1[0] != engine0[0] or engine1[1] == engine0[1] + 1, (engine0, engine1)
