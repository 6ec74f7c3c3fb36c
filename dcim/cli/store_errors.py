"""One line for a store error on the command line.

A server that is not the store (a proxy's HTML error page, another service on the port) answers
with a body the store's error quotes; on a terminal that is dozens of lines. The command line
prints the first line of it, whitespace collapsed, cut at ``LIMIT`` characters."""

from __future__ import annotations

LIMIT = 300


def one_line(exc: BaseException, limit: int = LIMIT) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
