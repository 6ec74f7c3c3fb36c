"""Synthetic outdoor weather: seasonal + daily cycle + day-to-day anomalies, deterministic.

Temperature at time t = monthly normal (interpolated smoothly through the year) + a diurnal
cosine (minimum near 05:30, maximum near 14:30 local time) + a smooth day-to-day anomaly.
The anomaly is a pure function of (seed, day), so any instant can be evaluated directly: a
backfill and a live run with the same seed see the same weather.

Normals are rounded 1991–2020 KMA climate normals for Daejeon and Seoul [mem: KMA 평년값;
check against KMA ASOS before quoting]. The day-to-day σ ≈ 3 K and the ±4 K diurnal swing are
the reference's rough synthetic settings (ref §3.3 "Korea climate effects").
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np

# Monthly mean dry-bulb (°C) and relative humidity (%), January..December.
NORMALS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "daejeon": ((-1.0, 1.3, 6.4, 12.6, 18.1, 22.5, 25.6, 26.2, 21.4, 14.6, 7.6, 1.2),
                (67.0, 62.0, 60.0, 58.0, 63.0, 70.0, 80.0, 79.0, 75.0, 71.0, 70.0, 70.0)),
    "seoul": ((-1.9, 0.7, 6.1, 12.6, 18.2, 22.7, 25.3, 26.1, 21.6, 14.9, 7.5, 0.2),
              (56.0, 55.0, 56.0, 56.0, 62.0, 68.0, 78.0, 75.0, 69.0, 64.0, 62.0, 58.0)),
    "constant": ((15.0,) * 12, (60.0,) * 12),
}
DIURNAL_AMPLITUDE_K = 4.0
PEAK_HOUR_LOCAL = 14.5
ANOMALY_SIGMA_K = 3.0
# RH falls as the air warms through the day (same moisture, higher saturation pressure);
# about 2.5 % RH per K is the rule near 20 °C [assumption: derived from Magnus formula slope].
RH_PCT_PER_K = 2.5
_MA_WEIGHTS = np.array([0.5, 0.3, 0.2])  # smooths the daily anomaly over 3 days (≈ AR(1) ρ 0.6)
_MA_WEIGHTS = _MA_WEIGHTS / math.sqrt(float((_MA_WEIGHTS ** 2).sum()))
_DAY_NS = 86_400 * 10**9


class Weather:
    """Outdoor temperature (°C) and RH (%) for a site at any UTC time."""

    def __init__(self, kind: str = "daejeon", *, seed: int = 42, tz: str = "Asia/Seoul"):
        if kind not in NORMALS:
            raise ValueError(f"unknown weather {kind!r}; choose from {sorted(NORMALS)}")
        self.kind = kind
        self.seed = seed
        self.tz = ZoneInfo(tz)
        temps, rhs = NORMALS[kind]
        self._temps = np.array(temps)
        self._rhs = np.array(rhs)
        self._noise_cache: dict[int, tuple[float, float]] = {}

    def _day_noise(self, day: int) -> tuple[float, float]:
        """Unit-normal temperature and humidity shocks of one day (a pure function of seed, day)."""
        hit = self._noise_cache.get(day)
        if hit is None:
            rng = np.random.default_rng([self.seed & 0xFFFFFFFF, 0x57EA, day + 10**6])
            hit = (float(rng.standard_normal()), float(rng.standard_normal()))
            if len(self._noise_cache) > 4096:
                self._noise_cache.clear()
            self._noise_cache[day] = hit
        return hit

    def _anomaly(self, day_f: float) -> tuple[float, float]:
        """Smooth anomaly (K, %RH) at fractional day *day_f*: 3-day moving average of daily shocks,
        cosine-interpolated between days so the series has no steps."""
        if self.kind == "constant":
            return 0.0, 0.0
        d0 = math.floor(day_f)
        frac = day_f - d0
        w = 0.5 - 0.5 * math.cos(math.pi * frac)
        out = []
        for day in (d0, d0 + 1):
            t = h = 0.0
            for k, weight in enumerate(_MA_WEIGHTS):
                zt, zh = self._day_noise(day - k)
                t += weight * zt
                h += weight * zh
            out.append((t, h))
        t = (1 - w) * out[0][0] + w * out[1][0]
        h = (1 - w) * out[0][1] + w * out[1][1]
        return ANOMALY_SIGMA_K * t, 6.0 * h

    def at(self, time_ns: int) -> tuple[float, float]:
        """(outdoor dry-bulb °C, outdoor RH %) at UTC *time_ns*."""
        local = datetime.fromtimestamp(time_ns / 1e9, tz=UTC).astimezone(self.tz)
        # Month position with normals at mid-month; wrap around the year.
        year_frac = (local.timetuple().tm_yday - 1 + local.hour / 24.0) / 365.25
        m = year_frac * 12.0 - 0.5
        i0 = math.floor(m) % 12
        f = m - math.floor(m)
        base_t = (1 - f) * self._temps[i0] + f * self._temps[(i0 + 1) % 12]
        base_rh = (1 - f) * self._rhs[i0] + f * self._rhs[(i0 + 1) % 12]
        if self.kind == "constant":
            return float(base_t), float(base_rh)
        hour = local.hour + local.minute / 60.0 + local.second / 3600.0
        diurnal = DIURNAL_AMPLITUDE_K * math.cos(2 * math.pi * (hour - PEAK_HOUR_LOCAL) / 24.0)
        anom_t, anom_rh = self._anomaly(time_ns / _DAY_NS)
        temp = base_t + diurnal + anom_t
        rh = base_rh - RH_PCT_PER_K * diurnal + anom_rh
        return float(temp), float(min(100.0, max(15.0, rh)))
