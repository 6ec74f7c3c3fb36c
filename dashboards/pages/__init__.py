"""The pages. Each module has ``PATH``, ``TITLE`` (an i18n key), ``layout(ctx)`` returning the
page's components, and ``update(ctx)`` returning what changes every refresh::

    {"v": {key: (text, css_class)}, "fig": {key: figure dict}, "tbl": {key: rows}}

``layout`` fills components from the same ``update`` result, so the first paint is complete and
later refreshes only patch values, figure data and table rows in place.
"""

from __future__ import annotations

from dashboards.pages.base import Ctx, cached, make_ctx, parse_search

__all__ = ["Ctx", "cached", "make_ctx", "page_for", "parse_search", "registry"]


def registry():
    from dashboards.pages import alarms, cooling, energy, gpus, optimizer, overview, power, racks, tenants

    return [overview, alarms, racks, gpus, tenants, cooling, power, energy, optimizer]


def page_for(path: str | None):
    path = (path or "/").rstrip("/") or "/"
    for module in registry():
        if module.PATH == path:
            return module
    return registry()[0]
