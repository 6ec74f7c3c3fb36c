"""dcim probe: read one SNMP device (or this host's GPUs) without a config and show what it says."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

NAME = "probe"
HELP = "read one SNMP device (or local GPUs with --nvml) and print decoded readings"
DESCRIPTION = (
    "Read one device without a config: detect its profile from sysObjectID (or use --profile), "
    "print every decoded reading with its unit, as a table or as JSON lines "
    '{"measurement": ..., "tags": {...}, "fields": {...}}. Exit status 0 when the device answered, '
    "1 otherwise (the reason is printed). Secrets: a community or key given on the command line is "
    "visible to every user in 'ps'; prefer --community-env VAR and --v3-auth-key-env/--v3-priv-key-env, "
    "which read the secret from an environment variable.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("host", nargs="?", metavar="HOST[:PORT]", help="the agent (port 161 by default)")
    v2 = parser.add_argument_group("SNMP v2c")
    v2.add_argument("--community", help="community string (visible in ps: prefer --community-env)")
    v2.add_argument("--community-env", metavar="VAR", help="read the community from environment variable VAR")
    v3 = parser.add_argument_group("SNMP v3 (authPriv)")
    v3.add_argument("--v3-user", metavar="USER")
    v3.add_argument("--v3-auth-key-env", metavar="VAR", help="environment variable holding the auth passphrase")
    v3.add_argument("--v3-priv-key-env", metavar="VAR", help="environment variable holding the privacy passphrase")
    v3.add_argument("--v3-auth-proto", default="SHA", choices=["MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"])
    v3.add_argument("--v3-priv-proto", default="AES", choices=["DES", "AES", "AES192", "AES256"])
    v3.add_argument("--v3-context", default="", metavar="NAME", help="SNMPv3 context name")
    parser.add_argument("--profile", default="auto", help="device profile (default: detect from sysObjectID)")
    parser.add_argument("--kind", choices=["pdu", "cooling", "ups", "meter"],
                        help="what the device is, to pick among generic profiles when sysObjectID is unknown")
    parser.add_argument("--format", default="table", choices=["table", "json"])
    parser.add_argument("--timeout", type=float, default=2.0, metavar="S", help="per-request timeout (default 2)")
    parser.add_argument("--retries", type=int, default=1)
    parser.add_argument("--list-profiles", action="store_true", help="list the device profiles and exit")
    parser.add_argument("--walk", metavar="FILE",
                        help="decode a saved walk (snmprec: OID|TYPE|VALUE a line) offline instead of a device")
    parser.add_argument("--save-walk", metavar="FILE",
                        help="also record the device's walk to FILE in snmprec form (send it when a device "
                             "is not decoded; `dcim probe --walk FILE` decodes it offline)")
    parser.add_argument("--nvml", action="store_true", help="probe this host's GPUs over NVML instead")


def _env(var: str, what: str) -> str:
    value = os.environ.get(var)
    if not value:
        raise SystemExit(f"error: {what}: environment variable {var} is not set")
    return value


def _auth(args):
    from collectors.snmp.engine import V3, V2c

    if args.v3_user:
        if not args.v3_auth_key_env:
            raise SystemExit("error: --v3-user needs --v3-auth-key-env (and usually --v3-priv-key-env)")
        return V3(args.v3_user, _env(args.v3_auth_key_env, "--v3-auth-key-env"),
                  _env(args.v3_priv_key_env, "--v3-priv-key-env") if args.v3_priv_key_env else None,
                  args.v3_auth_proto, args.v3_priv_proto, args.v3_context)
    if args.community_env:
        return V2c(_env(args.community_env, "--community-env"))
    return V2c(args.community or "public")


def _split(hostport: str) -> tuple[str, int]:
    if hostport.startswith("["):  # [v6]:port
        host, _, rest = hostport[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 161
    if hostport.count(":") == 1:
        host, port = hostport.split(":")
        return host, int(port)
    return hostport, 161


def _poller_and_endpoint(args):
    """A live device, or a saved walk answered offline (--walk)."""
    from collectors.snmp.engine import Endpoint, SnmpPoller, V2c
    from collectors.snmp.walkfile import WalkPoller

    if args.walk:
        return WalkPoller(args.walk), Endpoint("walk", 0, V2c("public")), args.walk
    host, port = _split(args.host)
    endpoint = Endpoint(host, port, _auth(args), timeout_s=args.timeout, retries=args.retries)
    return SnmpPoller(), endpoint, args.host


async def _save_walk(poller, endpoint, sys_oid, path: str, err) -> None:
    from collectors.snmp.walkfile import record

    lines = await record(poller, endpoint, sys_oid)
    # a few hundred kB at most, written once at the end of a one-off command
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"saved {len(lines)} OIDs to {path}", file=err)


async def _probe(args, out) -> int:
    from collectors.snmp.device import DetectError, SnmpDevice
    from collectors.snmp.engine import SYS_DESCR, SYS_NAME, SYS_OBJECT_ID, SnmpError
    from collectors.snmp.walkfile import WalkFileError
    from dcim.metrics import field_unit

    try:
        poller, endpoint, label = _poller_and_endpoint(args)
    except WalkFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    host, port = endpoint.host, endpoint.port
    try:
        ident = await poller.get(endpoint, [SYS_NAME, SYS_DESCR, SYS_OBJECT_ID])
        name = ident.get(SYS_NAME)
        name = name if isinstance(name, str) and name else host
        if args.save_walk:
            sys_oid = ident.get(SYS_OBJECT_ID)
            await _save_walk(poller, endpoint, str(sys_oid) if isinstance(sys_oid, str) else "", args.save_walk,
                             sys.stderr)
        device = SnmpDevice(name, args.kind, endpoint, profile=args.profile)
        points = await device.poll(poller)
    except (SnmpError, DetectError, KeyError) as exc:
        print(f"{label}: {getattr(exc, 'reason', None) or str(exc).strip(chr(39))}", file=sys.stderr)
        return 1
    except OSError as exc:  # --save-walk to a path that cannot be written
        print(f"error: cannot write {args.save_walk}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    finally:
        poller.close()
    plan = device.plan
    assert plan is not None, "a poll that returned has discovered a plan"
    if args.format == "json":
        for p in points:
            out.write(json.dumps({"measurement": p.measurement, "tags": p.tags, "fields": p.fields}) + "\n")
        return 0
    descr = ident.get(SYS_DESCR)
    where = f"walk {args.walk}" if args.walk else f"{host}:{port} ({endpoint.auth.describe()})"
    out.write(f"device    {name} at {where}\n")
    out.write(f"sysDescr  {descr if isinstance(descr, str) else '?'}\n")
    out.write(f"sysObjectID {plan.sys_object_id or '?'}  profile {plan.profile.name}: {plan.profile.description}\n")
    stats = device.stats
    out.write(f"readings  {stats.values} values; absent: {stats.missing} missing, {stats.sentinel} sentinel, "
              f"{stats.garbage} bad type, {stats.implausible} implausible\n\n")
    for p in points:
        tags = " ".join(f"{k}={v}" for k, v in p.tags.items() if k not in ("site",))
        out.write(f"{p.measurement} {tags}\n")
        for field, value in p.fields.items():
            unit = field_unit(p.measurement, field)
            shown = f"{value:g}" if isinstance(value, float) else str(value)
            out.write(f"    {field:20} {shown:>12} {unit}\n")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.list_profiles:
        from collectors.snmp.profiles import ALL, FOLDER_OF

        for p in ALL:
            print(f"{p.name:22} {p.kind:8} {FOLDER_OF.get(p.name, ''):12} {p.description}")
        return 0
    if args.nvml:
        from collectors.gpu.probe import probe_nvml

        return int(probe_nvml(args.format) or 0)
    if not args.host and not args.walk:
        print("error: give HOST[:PORT] (or --walk FILE, --nvml, or --list-profiles)", file=sys.stderr)
        return 2
    if args.walk and (args.host or args.save_walk):
        print("error: --walk decodes a saved walk offline: give no HOST and no --save-walk", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_probe(args, sys.stdout))
    except BrokenPipeError:  # `dcim probe ... | head`
        sys.stderr.close()
        return 0
