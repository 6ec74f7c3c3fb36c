"""What every page shares: the context a page renders in (data, language, URL parameters, kiosk)
and the per-tick cache of a page's update. The pages import these from here, not from the
``dashboards.pages`` package (whose ``registry`` imports the pages)."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs

from dashboards.data import DataSource
from dashboards.i18n import lang_or_default


@dataclass
class Ctx:
    data: DataSource
    lang: str = "en"
    params: dict = field(default_factory=dict)
    kiosk: bool = False

    @property
    def snap(self) -> dict:
        return self.data.snapshot()

    @property
    def tz(self) -> str:
        return self.data.tz

    @property
    def config(self):
        return self.data.config


def cached(update):
    """Share a page's update across screens: one computation per (page, language, parameters, tick)."""
    import functools

    @functools.wraps(update)
    def wrapper(ctx: Ctx) -> dict:
        params = tuple(sorted((k, v) for k, v in ctx.params.items() if k not in ("kiosk", "lang")))
        key = ("page", update.__module__, ctx.lang, params)
        return ctx.data.cache.get(key, ctx.data.tick(), lambda: update(ctx), stale_ok=True)

    wrapper.uncached = update
    return wrapper


def parse_search(search: str | None) -> dict:
    q = parse_qs((search or "").lstrip("?"))
    return {k: v[-1] for k, v in q.items() if v}


def make_ctx(data: DataSource, search: str | None) -> Ctx:
    params = parse_search(search)
    lang = lang_or_default(params.get("lang"), data.config.dashboard.lang)
    return Ctx(data=data, lang=lang, params=params, kiosk=params.get("kiosk") in ("1", "true", "yes"))
