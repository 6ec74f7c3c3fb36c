"""A small message catalogue (English, Korean) and locale-aware number/time formatting.

Times are stored in UTC; every time shown is converted to the site's time zone. Missing keys
fall back to English, then to the key itself, so a missing translation never breaks a page.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

LANGS = ("en", "ko")
# Keys that translate a value written by another part (an optimizer action, a job class, an alarm
# rule, state or severity): an unknown one shows the value itself.
VALUE_PREFIXES = ("action.", "class.", "rule.", "state.", "sev.", "mode.", "src.")

MESSAGES: dict[str, dict[str, str]] = {
    # navigation
    "nav.overview": {"en": "Overview", "ko": "개요"},
    "nav.alarms": {"en": "Alarms", "ko": "경보"},
    "nav.racks": {"en": "Racks", "ko": "랙"},
    "nav.gpus": {"en": "GPUs", "ko": "GPU"},
    "nav.cooling": {"en": "Cooling", "ko": "냉각"},
    "nav.power": {"en": "Power chain", "ko": "전력 계통"},
    "nav.energy": {"en": "Energy", "ko": "에너지"},
    "nav.optimizer": {"en": "Optimizer", "ko": "최적화"},
    "nav.tenants": {"en": "Tenants", "ko": "기관"},
    "tenants.title": {"en": "Tenants: GPUs now and energy this month", "ko": "기관별 GPU 사용 현황과 이번 달 에너지"},
    "tenants.idle": {"en": "(idle GPUs)", "ko": "(유휴 GPU)"},
    "tenants.active": {"en": "Tenants with jobs", "ko": "작업 중인 기관"},
    "tenants.busy": {"en": "GPUs in jobs", "ko": "작업 중 GPU"},
    "tenants.unplaced": {"en": "Job GPUs not in telemetry", "ko": "원격 측정에 없는 작업 GPU"},
    "col.job": {"en": "Job", "ko": "작업"},
    "col.tenant": {"en": "Tenant", "ko": "기관"},
    "col.jobs": {"en": "Jobs", "ko": "작업 수"},
    "col.gpus": {"en": "GPUs", "ko": "GPU 수"},
    "col.gpu_kw": {"en": "GPU power kW", "ko": "GPU 전력 kW"},
    "col.it_kwh_mtd": {"en": "IT kWh this month", "ko": "이번 달 IT kWh"},
    "col.facility_kwh_mtd": {"en": "Facility kWh this month", "ko": "이번 달 시설 kWh"},
    "col.chargeback_method": {"en": "Billed by", "ko": "과금 기준"},
    # KPIs
    "kpi.pue_now": {"en": "PUE now (instantaneous)", "ko": "현재 PUE (순시값)"},
    "kpi.pue_24h": {"en": "PUE 24 h (energy)", "ko": "PUE 24시간 (에너지 기준)"},
    "kpi.pue_30d": {"en": "PUE 30 d (energy)", "ko": "PUE 30일 (에너지 기준)"},
    "kpi.it_kw": {"en": "IT power", "ko": "IT 전력"},
    "kpi.facility_kw": {"en": "Facility power", "ko": "시설 전력"},
    "kpi.cooling_kw": {"en": "Cooling power", "ko": "냉각 전력"},
    "kpi.outdoor": {"en": "Outdoor", "ko": "외기"},
    # panels
    "panel.alarms": {"en": "Active alarms", "ko": "활성 경보"},
    "panel.floor_inlet": {"en": "Rack inlet temperature vs ASHRAE class", "ko": "랙 흡기 온도 (ASHRAE 등급 기준)"},
    "panel.floor_power": {"en": "Rack power vs budget", "ko": "랙 전력 (예산 대비)"},
    "panel.chain": {"en": "Power-chain headroom (80 % breaker derate)", "ko": "전력 계통 여유 (차단기 80 % 감액)"},
    "panel.optimizer": {"en": "Optimizer", "ko": "최적화기"},
    "sev.critical": {"en": "Critical", "ko": "심각"},
    "sev.warning": {"en": "Warning", "ko": "주의"},
    "opt.mode": {"en": "Mode", "ko": "모드"},
    "opt.capped": {"en": "GPUs capped", "ko": "제한된 GPU"},
    "opt.saving_now": {"en": "Saving now", "ko": "현재 절감"},
    "opt.saved_today": {"en": "Saved today", "ko": "오늘 절감"},
    "mode.off": {"en": "off", "ko": "꺼짐"},
    "mode.advise": {"en": "advise", "ko": "권고"},
    "mode.enforce": {"en": "enforce", "ko": "적용"},
    "chain.ups": {"en": "Highest UPS load", "ko": "최대 UPS 부하"},
    "chain.ups_headroom": {"en": "Tightest UPS headroom", "ko": "최소 UPS 여유"},
    "chain.worst_pdu": {"en": "Worst PDU phase vs derate", "ko": "최대 PDU 상 부하 (감액 기준)"},
    "chain.failover": {"en": "Racks without A/B failover headroom", "ko": "A/B 절체 여유 없는 랙"},
    "chain.feed_a": {"en": "Feed A", "ko": "A 계통"},
    "chain.feed_b": {"en": "Feed B", "ko": "B 계통"},
    "chain.balance": {"en": "A/B balance", "ko": "A/B 균형"},
    "stamp.data": {"en": "Data as of {time} · age {age}", "ko": "데이터 기준 {time} · 경과 {age}"},
    "stamp.nodata": {"en": "No data in the store", "ko": "저장소에 데이터 없음"},
    "banner.ok": {"en": "No active alarms", "ko": "활성 경보 없음"},
    "banner.count": {"en": "{crit} critical · {warn} warning", "ko": "심각 {crit} · 주의 {warn}"},
    "banner.more": {"en": "+{n} more", "ko": "외 {n}건"},
    "banner.shelved": {"en": "{n} shelved", "ko": "보류 {n}"},
    "banner.rest": {"en": "and {n} more: {groups}", "ko": "외 {n}건: {groups}"},
    "state.raised": {"en": "raised", "ko": "발생"},
    "state.acked": {"en": "acknowledged", "ko": "확인됨"},
    "state.shelved": {"en": "shelved", "ko": "보류"},
    "state.cleared": {"en": "cleared", "ko": "해제"},
    "rule.inlet_temp": {"en": "inlet temperature", "ko": "랙 흡기 온도"},
    "rule.pdu_phase_load": {"en": "PDU phase load", "ko": "PDU 상 부하"},
    "rule.pdu_breaker_load": {"en": "PDU breaker load", "ko": "PDU 차단기 부하"},
    "rule.pdu_load": {"en": "PDU load", "ko": "PDU 부하"},
    "rule.feed_failover": {"en": "A/B failover headroom", "ko": "A/B 절체 여유"},
    "rule.ups_on_battery": {"en": "UPS on battery", "ko": "UPS 배터리 운전"},
    "rule.ups_runtime": {"en": "UPS runtime", "ko": "UPS 잔여 시간"},
    "rule.ups_load": {"en": "UPS load", "ko": "UPS 부하"},
    "rule.gpu_temp": {"en": "GPU temperature", "ko": "GPU 온도"},
    "rule.gpu_mem_temp": {"en": "GPU memory temperature", "ko": "GPU 메모리 온도"},
    "rule.gpu_ecc": {"en": "GPU ECC errors", "ko": "GPU ECC 오류"},
    "rule.gpu_throttle": {"en": "GPU throttling", "ko": "GPU 스로틀링"},
    "rule.gpu_lost": {"en": "GPU lost", "ko": "GPU 손실"},
    "rule.collector_failed": {"en": "collector failing", "ko": "수집기 실패"},
    "rule.gpu_silent": {"en": "GPU readings silent", "ko": "GPU 측정값 끊김"},
    "rule.pdu_silent": {"en": "PDU silent", "ko": "PDU 응답 없음"},
    "rule.ups_silent": {"en": "UPS silent", "ko": "UPS 응답 없음"},
    "rule.cooling_silent": {"en": "cooling unit silent", "ko": "냉각 장치 응답 없음"},
    "rule.env_silent": {"en": "rack sensors silent", "ko": "랙 센서 응답 없음"},
    "rule.meter_silent": {"en": "meter silent", "ko": "계량기 응답 없음"},
    "alarm.col.state": {"en": "State", "ko": "상태"},
    "alarm.col.raised": {"en": "Raised", "ko": "발생 시각"},
    "alarm.col.by": {"en": "By", "ko": "처리자"},
    "alarm.col.note": {"en": "Note", "ko": "메모"},
    "alarm.col.time": {"en": "Time", "ko": "시각"},
    "alarm.col.id": {"en": "Alarm", "ko": "경보"},
    "alarms.history": {"en": "History (7 days)", "ko": "이력 (7일)"},
    "alarms.act": {"en": "Acknowledge or shelve", "ko": "확인 또는 보류"},
    "alarms.pick": {"en": "Alarm", "ko": "경보"},
    "alarms.note": {"en": "Note (optional)", "ko": "메모 (선택)"},
    "alarms.ack": {"en": "Acknowledge", "ko": "확인"},
    "alarms.shelve": {"en": "Shelve", "ko": "보류"},
    "alarms.for_h": {"en": "for {h} h", "ko": "{h}시간"},
    "alarms.done_ack": {"en": "Acknowledged {id} as {by}", "ko": "{by} 님이 {id} 확인"},
    "alarms.done_shelve": {"en": "Shelved {id} until {until} as {by}", "ko": "{by} 님이 {id} 보류 ({until}까지)"},
    "alarms.need_auth": {"en": "Acknowledging needs a signed-in operator ([dashboard] auth_user)",
                         "ko": "확인하려면 로그인한 운영자가 필요합니다 ([dashboard] auth_user)"},
    "alarms.failed": {"en": "Not done: {why}", "ko": "처리 실패: {why}"},
    "alarms.none": {"en": "No active alarms", "ko": "활성 경보 없음"},
    "alarms.shelved_until": {"en": "shelved until {until}", "ko": "{until}까지 보류"},
    "stamp.nodata_yet": {"en": "No data yet — waiting for the store", "ko": "아직 데이터 없음 — 저장소 대기 중"},
    "stamp.stale_sources": {"en": "stale: {what}", "ko": "지연: {what}"},
    "src.facility": {"en": "facility meters", "ko": "시설 계량"},
    "src.racks": {"en": "rack sensors", "ko": "랙 센서"},
    "src.pdus": {"en": "PDUs", "ko": "PDU"},
    "src.ups": {"en": "UPS", "ko": "UPS"},
    "src.cooling": {"en": "cooling", "ko": "냉각"},
    "src.gpus": {"en": "GPUs", "ko": "GPU"},
    "axis.time": {"en": "time ({zone})", "ko": "시각 ({zone})"},
    "cooling.output": {"en": "Heat removed (hall units)", "ko": "제거 열량 (전산실 장치)"},
    "cooling.input": {"en": "Electrical input (fresh units)", "ko": "전기 입력 (최신 값)"},
    "cooling.cop": {"en": "Plant COP", "ko": "설비 COP"},
    "axis.day": {"en": "day ({zone})", "ko": "날짜 ({zone})"},
    "energy.coverage": {"en": "{pct} % of hours with data ({have} of {total} h)",
                        "ko": "데이터 있는 시간 {pct} % ({total}시간 중 {have}시간)"},
    "energy.coverage_7d": {"en": "Data coverage, 7 d", "ko": "데이터 범위 (7일)"},
    "energy.empty_quarter": {"en": "no data in this quarter: nothing to report", "ko": "이 분기에 데이터 없음: 보고할 내용 없음"},
    "legend.normal": {"en": "normal", "ko": "정상"},
    "legend.warning": {"en": "warning", "ko": "주의"},
    "legend.critical": {"en": "critical", "ko": "심각"},
    "legend.stale": {"en": "stale (last value)", "ko": "지연 (마지막 값)"},
    "legend.nodata": {"en": "no data", "ko": "데이터 없음"},
    "panel.trend": {"en": "Last 24 h: PUE, IT and facility power", "ko": "최근 24시간: PUE, IT 및 시설 전력"},
    "col.rooms": {"en": "Halls fed", "ko": "공급 전산실"},
    "col.headroom_kw": {"en": "Headroom kW", "ko": "여유 kW"},
    "col.ups_load": {"en": "Load %", "ko": "부하 %"},
    "power.halls": {"en": "Headroom per hall (only the UPSes that feed it)", "ko": "전산실별 여유 (해당 전산실 UPS만)"},
    "optimizer.measured": {"en": "Measured saving (M&V)", "ko": "실측 절감 (M&V)"},
    "optimizer.estimated_now": {"en": "Estimated saving now", "ko": "현재 예상 절감"},
    "optimizer.no_measured": {"en": "not measured yet", "ko": "아직 측정 없음"},
    "optimizer.ci": {"en": "(95 % CI {lo}–{hi} %)", "ko": "(95 % 신뢰구간 {lo}–{hi} %)"},
    "optimizer.groups": {"en": "{treated} capped-eligible jobs vs {control} control jobs",
                         "ko": "제한 대상 작업 {treated}개 대 대조군 {control}개"},
    "optimizer.classes": {"en": "Throughput cost per job class", "ko": "작업 유형별 처리량 비용"},
    "optimizer.cycle": {"en": "Last optimizer cycle (whole facility)", "ko": "최근 최적화 주기 (시설 전체)"},
    "optimizer.per_gpu": {"en": "Per-GPU decisions", "ko": "GPU별 결정"},
    "col.job_class": {"en": "Job class", "ko": "작업 유형"},
    "col.cap_pct": {"en": "Mean cap % of default", "ko": "평균 제한 (기본 대비 %)"},
    "col.loss_bound_pct": {"en": "Allowed throughput loss %", "ko": "허용 처리량 손실 %"},
    "col.saving_kw": {"en": "Est. saving kW", "ko": "예상 절감 kW"},
    "col.predicted_pue": {"en": "Predicted PUE", "ko": "예측 PUE"},
    "class.training": {"en": "training", "ko": "학습"},
    "class.fine_tuning": {"en": "fine-tuning", "ko": "미세 조정"},
    "class.inference": {"en": "inference", "ko": "추론"},
    "class.batch": {"en": "batch", "ko": "배치"},
    "class.unknown": {"en": "unknown", "ko": "미분류"},
    "class.idle": {"en": "(no job)", "ko": "(작업 없음)"},
    "action.cap": {"en": "cap", "ko": "제한"},
    "action.advise": {"en": "advise", "ko": "권고"},
    "action.release": {"en": "release", "ko": "해제"},
    "action.restore": {"en": "restore", "ko": "복원"},
    "action.hold": {"en": "hold", "ko": "보류"},
    "action.rollback": {"en": "rollback", "ko": "롤백"},
    "unit.% of derated breaker": {"en": "% of derated breaker", "ko": "% (감액 차단기 대비)"},
    "unit.% of one derated breaker": {"en": "% of one derated breaker", "ko": "% (단일 감액 차단기 대비)"},
    "unit.s": {"en": "s", "ko": "초"},
    "unit.errors": {"en": "errors", "ko": "건"},
    # alarms
    "alarm.inlet_allowable": {"en": "Inlet {value} outside {cls} allowable {lo}–{hi} °C",
                              "ko": "흡기 {value}, {cls} 허용 범위 {lo}–{hi} °C 벗어남"},
    "alarm.inlet_recommended": {"en": "Inlet {value} outside recommended {lo}–{hi} °C ({cls})",
                                "ko": "흡기 {value}, 권장 범위 {lo}–{hi} °C 벗어남 ({cls})"},
    "alarm.breaker": {"en": "{what} {value} vs derated limit {limit}", "ko": "{what} {value}, 감액 한도 {limit}"},
    "alarm.failover": {"en": "A+B {value} exceeds one derated breaker {limit} (no failover headroom)",
                       "ko": "A+B {value}, 단일 차단기 감액 한도 {limit} 초과 (절체 여유 없음)"},
    "alarm.ups_battery": {"en": "UPS on battery", "ko": "UPS 배터리 운전 중"},
    "alarm.ups_load": {"en": "UPS load {value} vs {limit}", "ko": "UPS 부하 {value}, 한도 {limit}"},
    "alarm.gpu_throttle": {"en": "GPU throttling: {reasons}", "ko": "GPU 스로틀링: {reasons}"},
    "alarm.gpu_lost": {"en": "GPU lost: {error}", "ko": "GPU 손실: {error}"},
    "alarm.collector": {"en": "Collector failing: {error}", "ko": "수집기 실패: {error}"},
    "alarm.col.severity": {"en": "Severity", "ko": "심각도"},
    "alarm.col.subject": {"en": "Where", "ko": "위치"},
    "alarm.col.message": {"en": "What", "ko": "내용"},
    "alarm.col.value": {"en": "Value", "ko": "값"},
    "alarm.col.threshold": {"en": "Threshold", "ko": "기준"},
    "alarm.col.first_seen": {"en": "First seen", "ko": "최초 발생"},
    # detail pages
    "racks.title": {"en": "Rack", "ko": "랙"},
    "racks.servers": {"en": "Servers and GPUs", "ko": "서버 및 GPU"},
    "racks.phases": {"en": "PDU phases", "ko": "PDU 상"},
    "racks.temps": {"en": "Inlet / outlet", "ko": "흡기 / 배기"},
    "racks.budget": {"en": "Power / budget", "ko": "전력 / 예산"},
    "gpus.title": {"en": "GPU fleet", "ko": "GPU 현황"},
    "gpus.history": {"en": "History (24 h)", "ko": "이력 (24시간)"},
    "gpus.pick": {"en": "Select a GPU row to see its history", "ko": "행을 선택하면 이력을 표시합니다"},
    "cooling.title": {"en": "Cooling units", "ko": "냉각 장치"},
    "power.title": {"en": "Power chain", "ko": "전력 계통"},
    "energy.title": {"en": "Energy", "ko": "에너지"},
    "energy.trend": {"en": "Facility and IT power (7 d, hourly)", "ko": "시설 및 IT 전력 (7일, 시간별)"},
    "energy.pue_trend": {"en": "Daily PUE (energy-based, 30 d)", "ko": "일별 PUE (에너지 기준, 30일)"},
    "energy.report": {"en": "Quarterly energy report", "ko": "분기 에너지 보고서"},
    "energy.download": {"en": "Download CSV", "ko": "CSV 다운로드"},
    "energy.unavailable": {"en": "Report unavailable", "ko": "보고서를 사용할 수 없음"},
    "optimizer.title": {"en": "Optimizer decisions", "ko": "최적화 결정 기록"},
    "optimizer.pue": {"en": "Predicted vs actual PUE (24 h)", "ko": "예측 대 실제 PUE (24시간)"},
    "optimizer.predicted": {"en": "predicted", "ko": "예측"},
    "optimizer.actual": {"en": "actual (instantaneous)", "ko": "실제 (순시)"},
    "col.time": {"en": "Time", "ko": "시각"},
    "col.host": {"en": "Host", "ko": "호스트"},
    "col.gpu": {"en": "GPU", "ko": "GPU"},
    "col.rack": {"en": "Rack", "ko": "랙"},
    "col.room": {"en": "Room", "ko": "전산실"},
    "col.uuid": {"en": "UUID", "ko": "UUID"},
    "col.power_w": {"en": "Power W", "ko": "전력 W"},
    "col.cap_w": {"en": "Cap W", "ko": "제한 W"},
    "col.default_w": {"en": "Default W", "ko": "기본 W"},
    "col.temp_c": {"en": "Temp °C", "ko": "온도 °C"},
    "col.util_pct": {"en": "Util %", "ko": "사용률 %"},
    "col.action": {"en": "Action", "ko": "조치"},
    "col.reason": {"en": "Reason", "ko": "사유"},
    "col.previous_w": {"en": "Previous W", "ko": "이전 W"},
    "col.saving_w": {"en": "Est. saving W", "ko": "예상 절감 W"},
    "col.unit": {"en": "Unit", "ko": "장치"},
    "col.kind": {"en": "Kind", "ko": "종류"},
    "col.supply": {"en": "Supply °C", "ko": "공급 °C"},
    "col.return": {"en": "Return °C", "ko": "환기 °C"},
    "col.output_kw": {"en": "Output kW", "ko": "출력 kW"},
    "col.electric_kw": {"en": "Input kW", "ko": "입력 kW"},
    "col.fan": {"en": "Fan %", "ko": "팬 %"},
    "col.pdu": {"en": "PDU", "ko": "PDU"},
    "col.feed": {"en": "Feed", "ko": "계통"},
    "col.current_a": {"en": "Current A", "ko": "전류 A"},
    "col.limit_a": {"en": "Derated A", "ko": "감액 한도 A"},
    "col.load_pct": {"en": "% of derate", "ko": "감액 대비 %"},
    "col.ups": {"en": "UPS", "ko": "UPS"},
    "col.output_w": {"en": "Output kW", "ko": "출력 kW"},
    "col.capacity": {"en": "Capacity kW", "ko": "용량 kW"},
    "col.battery": {"en": "On battery", "ko": "배터리"},
    "col.a_kw": {"en": "A kW", "ko": "A kW"},
    "col.b_kw": {"en": "B kW", "ko": "B kW"},
    "col.failover_pct": {"en": "A+B vs one breaker %", "ko": "A+B / 단일 차단기 %"},
    "col.balance": {"en": "A share %", "ko": "A 비율 %"},
    "col.inlet": {"en": "Inlet °C", "ko": "흡기 °C"},
    "col.outlet": {"en": "Outlet °C", "ko": "배기 °C"},
    "col.class": {"en": "Class", "ko": "등급"},
    "col.budget": {"en": "Budget kW", "ko": "예산 kW"},
    "col.rack_kw": {"en": "Power kW", "ko": "전력 kW"},
    "yes": {"en": "yes", "ko": "예"},
    "no": {"en": "no", "ko": "아니오"},
    "none": {"en": "none", "ko": "없음"},
    "stale": {"en": "stale", "ko": "지연"},
    "no_data": {"en": "no data", "ko": "데이터 없음"},
}


def lang_or_default(lang: str | None, default: str = "en") -> str:
    return lang if lang in LANGS else (default if default in LANGS else "en")


def t(key: str, lang: str = "en", **kwargs) -> str:
    entry = MESSAGES.get(key)
    if entry is None and key.startswith(VALUE_PREFIXES):
        return key.partition(".")[2]  # a value the catalogue does not know (a new action, rule): as written
    text = key if entry is None else entry.get(lang) or entry.get("en") or key
    return text.format(**kwargs) if kwargs else text


def fmt_num(value: float | None, digits: int = 1, unit: str = "") -> str:
    """A number with thousands separators (the same in en and ko), or an em dash when absent."""
    if value is None:
        return "—"
    text = f"{value:,.{digits}f}"
    return f"{text} {unit}" if unit else text


def fmt_time(time_ns: int | None, tz: str, lang: str = "en", with_date: bool = False) -> str:
    if time_ns is None:
        return "—"
    dt = datetime.fromtimestamp(time_ns / 1e9, tz=UTC).astimezone(ZoneInfo(tz))
    if with_date:
        return dt.strftime("%Y-%m-%d %H:%M:%S %Z")
    return dt.strftime("%H:%M:%S %Z")


def fmt_age(seconds: float | None, lang: str = "en") -> str:
    if seconds is None:
        return "—"
    seconds = max(0.0, seconds)
    units = {"en": ("s", "min", "h", "d"), "ko": ("초", "분", "시간", "일")}[lang_or_default(lang)]
    if seconds < 90:
        return f"{seconds:.0f} {units[0]}"
    if seconds < 5400:
        return f"{seconds / 60:.0f} {units[1]}"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} {units[2]}"
    return f"{seconds / 86400:.1f} {units[3]}"
