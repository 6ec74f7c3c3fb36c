"""Alarms on the dashboard come from the alarm engine's state in the store (the dashboard computes
none): the real engine raises them from readings, the banner aggregates (one line per device with
its parts, counts per severity, what does not fit summarised by rule), and an operator's
acknowledge/shelve goes through the engine's actions, signed by the basic-auth user."""

from __future__ import annotations

import base64
import time

import dash
import pytest
from dash import html

from dashboards import alarms as A
from dashboards import components as c
from dashboards.app import create_app
from dashboards.pages import alarms as alarms_page
from dashboards.pages import make_ctx
from dcim.metrics import Point
from tests.dashboards import sitedata as S

NS = 1_000_000_000


def _text(node) -> str:
    """All the text of a Dash component tree."""
    if isinstance(node, (str, int, float)):
        return str(node)
    if isinstance(node, list):
        return "".join(_text(x) for x in node)
    children = getattr(node, "children", None)
    return "" if children is None else _text(children)


def alarm(rule, entity, severity="warning", state="raised", raised_ns=1, **kw):
    return {"id": f"{rule}:{entity}", "rule": rule, "entity": entity, "severity": severity, "state": state,
            "raised_ns": raised_ns, "summary": f"{rule} on {entity}", "parts": [], **kw}


def test_order_and_shelves_that_ran_out():
    now = 1_000 * NS
    alarms = [alarm("pdu_load", "p2", raised_ns=5), alarm("inlet_temp", "R1", "critical", raised_ns=9),
              alarm("pdu_load", "p1", raised_ns=5), alarm("ups_load", "u1", state="cleared"),
              alarm("ups_load", "u2", state="shelved", shelved_until_ns=now - 1, raised_ns=7),
              alarm("ups_load", "u3", state="shelved", shelved_until_ns=now + NS, raised_ns=7)]
    out = A.active_only(alarms, now)
    assert [a["id"] for a in out] == ["inlet_temp:R1", "pdu_load:p1", "pdu_load:p2", "ups_load:u2", "ups_load:u3"]
    assert [a["state"] for a in out][-2:] == ["raised", "shelved"]  # u2's shelve ran out
    assert [a["id"] for a in A.annunciated(out)] == ["inlet_temp:R1", "pdu_load:p1", "pdu_load:p2", "ups_load:u2"]


def test_banner_one_line_per_device_and_no_bare_more_count():
    # 62 phase alarms in the old dashboard were 62 lines and "+59 more"; the engine gives one alarm
    # per PDU, and what the banner cannot list is summarised by rule
    alarms = [alarm("pdu_phase_load", f"pdu-{i:02d}", parts=["L1", "L2", "L3"]) for i in range(20)]
    alarms += [alarm("inlet_temp", f"R{i}", "critical") for i in range(2)]
    alarms += [alarm("ups_load", "ups-1", state="shelved", shelved_until_ns=2**62)]
    alarms = A.sort_alarms(alarms)
    items = c.banner(alarms, "en", "Asia/Seoul")
    text = [_text(i) for i in items]
    assert text[0] == "2 critical · 20 warning · 1 shelved"
    assert len(items) == 1 + c.BANNER_LINES + 1
    assert text[1].startswith("inlet_temp on R0") and text[2].startswith("inlet_temp on R1")
    assert text[-1] == "and 19 more: 19 × PDU phase load"
    assert not any("+" in x for x in text)
    assert c.banner_class(alarms) == "banner critical"
    ko = [_text(i) for i in c.banner(alarms, "ko", "Asia/Seoul")]
    assert ko[0] == "심각 2 · 주의 20 · 보류 1" and ko[-1] == "외 19건: 19 × PDU 상 부하"
    # only a shelved alarm: the banner is calm and says one is shelved
    shelved = [alarm("ups_load", "ups-1", state="shelved", shelved_until_ns=2**62)]
    assert [_text(i) for i in c.banner(shelved, "en", "Asia/Seoul")] == ["No active alarms", "1 shelved"]
    assert c.banner_class(shelved) == "banner ok"


def test_korean_alarm_line_is_built_from_the_fields():
    a = alarm("pdu_phase_load", "pdu-R01-a", value=112.4, threshold=100.0, unit="%", parts=["L1", "L3"])
    assert c.alarm_message(a, "en") == "pdu_phase_load on pdu-R01-a"  # the engine's summary, as written
    assert c.alarm_message(a, "ko") == "PDU 상 부하: pdu-R01-a 112 % (기준 100 %) · L1, L3"


@pytest.fixture
def engine_site(tmp_path):
    store = S.open_test_store(tmp_path / "s.sqlite")
    now = time.time_ns()
    S.populate(store, now)
    # rack R03's A-feed PDU: two of its three phases over the 80 % derate of 32 A (25.6 A)
    store.write([Point("pdu_phase", {"site": S.SITE, "room": "hall-1", "rack": "R03", "pdu": "pdu-R03-a",
                                     "feed": "A", "phase": ph}, {"current_a": amps}, now)
                 for ph, amps in (("L1", 30.0), ("L2", 9.0), ("L3", 31.0))])
    store.flush()
    yield store, now
    store.close()


def test_the_engine_raises_one_alarm_per_pdu_and_the_dashboard_lists_it(engine_site):
    store, now = engine_site
    cfg = S.make_config()
    S.run_engine(cfg, store, now_ns=now - 100 * NS, settle_s=99.0)
    app = create_app(cfg, store, alarms=S.engine_alarms(cfg, store))
    alarms = app.data.alarms()
    mine = [a for a in alarms if a["entity"] == "pdu-R03-a" and a["rule"] == "pdu_phase_load"]
    assert len(mine) == 1, alarms  # one alarm for the PDU's phases, not one per phase
    assert set(mine[0]["parts"]) == {"L1", "L3"} and mine[0]["severity"] == "critical"
    rows = alarms_page.update.uncached(make_ctx(app.data, ""))["tbl"]["alarms"]
    row = next(r for r in rows if r["id"] == "pdu_phase_load:pdu-R03-a")
    assert "L1" in row["message"] and "L3" in row["message"] and row["state"] == "raised"
    assert row["raised"].endswith("KST")  # the site's zone


def _act(app, button, alarm_id, note="", hours=4, user=None):
    """Call the acknowledge/shelve callback as Dash does, over the Flask test client."""
    headers = {"Content-Type": "application/json"}
    if user:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:pw".encode()).decode()
    body = {"output": "..alarm-result.children...alarm-result.className...alarm-pick.options..",
            "outputs": [{"id": "alarm-result", "property": "children"},
                        {"id": "alarm-result", "property": "className"}, {"id": "alarm-pick", "property": "options"}],
            "inputs": [{"id": "alarm-ack", "property": "n_clicks", "value": 1},
                       {"id": "alarm-shelve", "property": "n_clicks", "value": 1}],
            "changedPropIds": [f"{button}.n_clicks"],
            "state": [{"id": "alarm-pick", "property": "value", "value": alarm_id},
                      {"id": "alarm-note", "property": "value", "value": note},
                      {"id": "alarm-shelve-h", "property": "value", "value": hours},
                      {"id": "url", "property": "search", "value": ""}]}
    r = app.server.test_client().post("/_dash-update-component", json=body, headers=headers)
    assert r.status_code == 200, r.data[:300]
    return r.get_json()["response"]["alarm-result"]


def test_acknowledge_and_shelve_are_signed_by_the_signed_in_operator(engine_site, tmp_path, monkeypatch):
    store, now = engine_site
    secret = tmp_path / "pw"
    secret.write_text("pw")
    cfg = S.make_config(auth_user="kim", auth_password={"file": str(secret)})
    S.run_engine(cfg, store, now_ns=now - 100 * NS, settle_s=99.0)
    aid = "pdu_phase_load:pdu-R03-a"
    assert aid in [a["id"] for a in S.engine_alarms(cfg, store).active()]
    app = create_app(cfg, store, alarms=S.engine_alarms(cfg, store))
    out = _act(app, "alarm-ack", aid, note="electrician called", user="kim")
    assert out["children"] == f"Acknowledged {aid} as kim" and "ok" in out["className"]
    [a] = [a for a in app.data.alarms() if a["id"] == aid]
    assert (a["state"], a["by"], a["note"]) == ("acked", "kim", "electrician called")
    # the banner keeps it, marked acknowledged
    assert "acknowledged kim" in _text(c.banner([a], "en", "Asia/Seoul"))
    assert aid in [x["id"] for x in A.annunciated(app.data.alarms())]
    out = _act(app, "alarm-shelve", aid, hours=4, user="kim")
    assert out["children"].startswith(f"Shelved {aid} until ") and "KST" in out["children"]
    [a] = [a for a in app.data.alarms() if a["id"] == aid]
    assert a["state"] == "shelved" and 4 * 3600 - 60 < (a["shelved_until_ns"] - time.time_ns()) / NS <= 4 * 3600
    assert aid not in _text(c.banner(app.data.alarms(), "en", "Asia/Seoul"))
    # the history has each step, newest first, and the page shows it
    hist = [h for h in app.data.alarm_history() if h["id"] == aid]
    assert [h["state"] for h in hist] == ["shelved", "acked", "raised"]
    # a made-up alarm is refused with the engine's reason, not a 500
    out = _act(app, "alarm-ack", "inlet_temp:nope", user="kim")
    assert "failed" in out["className"] and "no alarm inlet_temp:nope" in out["children"]


def test_without_auth_nobody_can_acknowledge(engine_site):
    store, now = engine_site
    cfg = S.make_config()
    S.run_engine(cfg, store, now_ns=now - 100 * NS, settle_s=99.0)
    app = create_app(cfg, store, alarms=S.engine_alarms(cfg, store))
    aid = app.data.alarms()[0]["id"]
    out = _act(app, "alarm-ack", aid)
    assert "failed" in out["className"] and "auth_user" in out["children"]
    assert app.data.alarms()[0]["state"] == "raised"


def test_no_backend_means_an_empty_list_not_an_error(tmp_path):
    store = S.open_test_store(tmp_path / "s.sqlite")
    S.populate(store)
    app = create_app(S.make_config(), store)
    assert app.data.alarms() == [] and app.data.snapshot()["alarms"] == []
    assert isinstance(alarms_page.layout(make_ctx(app.data, "")), html.Div)
    assert dash.__version__
    store.close()
