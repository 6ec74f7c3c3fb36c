"""POST JSON over HTTP with the standard library, errors sorted into retry / give up."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request


def safe_name(url: str) -> str:
    """The URL as logs may show it: scheme, host, port and path; no query, no credentials."""
    u = urllib.parse.urlsplit(url)
    return f"{u.scheme}://{u.hostname}{':' + str(u.port) if u.port else ''}{u.path}"


def post_json(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
    from alerts.notify.worker import PermanentError, TransientError

    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:200].decode("utf-8", "replace")
        why = f"{safe_name(url)} answered {exc.code}: {detail}"
        if exc.code == 429 or exc.code >= 500:
            raise TransientError(why) from None
        raise PermanentError(why) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TransientError(f"{safe_name(url)}: {reason}") from None


def dumps(payload) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
