"""The pages. Each module has ``PATH``, ``TITLE`` (an i18n key), ``layout(ctx)`` returning the
page's components, and ``update(ctx)`` returning what changes every refresh::

    {"v": {key: (text, css_class)}, "fig": {key: figure dict}, "tbl": {key: rows}}

``layout`` fills components from the same ``update`` result, so the first paint is complete and
later refreshes only patch values, figure data and table rows in place.
"""

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
    def wrapper(ctx: "Ctx") -> dict:
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


def registry():
    from dashboards.pages import alarms, cooling, energy, gpus, optimizer, overview, power, racks, tenants

    return [overview, alarms, racks, gpus, tenants, cooling, power, energy, optimizer]


def page_for(path: str | None):
    path = (path or "/").rstrip("/") or "/"
    for module in registry():
        if module.PATH == path:
            return module
    return registry()[0]
