"""A deterministic synthetic atmosphere: the embedded default's truth, GFS and climatology.

Truth = a zonal-mean state per variable and level + travelling waves (zonal wave numbers 2..7
moving eastward at 8..22 degrees of longitude a day, under a cos^2(lat) envelope). Persistence
therefore loses skill with lead time, and the climatology (the time mean, which is the zonal-mean
state) has zero mean anomaly. Errors are smooth random fields seeded from strings with sha256, so
every process computes the same numbers. Every field is a sum of separable lat x lon products, so
one valid time costs a few outer products at any resolution.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import numpy as np
import xarray as xr

from gaia_dagster.core.contract import ALL_VARIABLES, LEVEL_VARIABLES, PRESSURE_LEVELS, UNITS, Grid

G = 9.80665
EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)
N_WAVES = 4
N_NOISE_MODES = 6

# Wave amplitude per variable (units of the variable; q is multiplicative in log space).
WAVE_AMPLITUDE = {"2t": 6.0, "10u": 5.0, "10v": 5.0, "msl": 1200.0,
                  "t": 5.0, "u": 9.0, "v": 8.0, "q": 0.25, "z": 700.0}

# Relative error (of the wave amplitude) of the GFS analysis and of the GFS forecast by lead.
ANALYSIS_ERROR = 0.04


def gfs_forecast_error(lead_hours: float) -> float:
    """Relative rms error of the GFS forecast: small at 12 h, growing linearly to 240 h."""
    return 0.10 + 0.55 * lead_hours / 240.0


def _seed(key: str) -> int:
    """A stable 64-bit seed from a string (never Python's salted hash)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _hours(moment: datetime) -> float:
    return (_utc(moment) - EPOCH).total_seconds() / 3600.0


def _level_key(variable: str, level: int | None) -> str:
    return variable if level is None else f"{variable}{level}"


class SyntheticAtmosphere:
    """The embedded world on a regular grid (1.5 degree by default)."""

    def __init__(self, resolution: float = 1.5, seed: int = 0):
        self.grid = Grid(resolution)
        self.seed = seed
        self.lat = self.grid.lat
        self.lon = self.grid.lon
        self._phi = np.deg2rad(self.lat)[:, None]          # (lat, 1)
        self._lam = np.deg2rad(self.lon)[None, :]          # (1, lon)
        self._envelope = np.cos(self._phi) ** 2

    # -- the zonal-mean state (= climatology) --------------------------------------------------
    def mean_state(self, variable: str, level: int | None) -> np.ndarray:
        """Zonal-mean state of a variable at a level, shape (lat, 1)."""
        s2 = np.sin(self._phi) ** 2
        if variable == "2t":
            return 300.0 - 55.0 * s2
        if variable == "msl":
            return 101325.0 + 900.0 * np.cos(4 * self._phi) * np.cos(self._phi)
        if variable == "10u":
            return 7.0 * np.sin(3 * self._phi) * np.cos(self._phi)
        if variable == "10v":
            return 1.5 * np.sin(2 * self._phi)
        p = float(level)
        if variable == "t":
            return 288.0 * (p / 1000.0) ** 0.19 - 35.0 * s2 * (p / 1000.0) - 8.0 * (1 - p / 1000.0) * s2
        if variable == "z":
            depth = np.log(1013.25 / p)
            return G * (7900.0 - 450.0 * s2) * depth
        if variable == "q":
            return 0.018 * np.exp(-(self._phi / np.deg2rad(35.0)) ** 2) * (p / 1000.0) ** 3 + 2e-6
        if variable == "u":
            return 30.0 * np.sin(2 * self._phi) ** 2 * (1.1 - p / 1000.0) - 4.0 * np.cos(self._phi) ** 8
        if variable == "v":
            return 1.0 * np.sin(2 * self._phi) * (p / 1000.0)
        raise KeyError(variable)

    # -- travelling waves ----------------------------------------------------------------------
    def _wave_anomaly(self, variable: str, level: int | None, hours: float) -> np.ndarray:
        """Sum of travelling waves, unit amplitude scale, shape (lat, lon)."""
        rng = np.random.default_rng(_seed(f"waves|{self.seed}|{variable}"))
        field = np.zeros(self.grid.shape)
        tilt_level = 0.0 if level is None else (1000.0 - level) / 1000.0
        for _ in range(N_WAVES):
            k = rng.integers(2, 8)
            speed = np.deg2rad(rng.uniform(8.0, 22.0)) / 24.0        # rad of longitude per hour
            phase = rng.uniform(0, 2 * np.pi)
            m = rng.integers(1, 4)
            amp = rng.uniform(0.5, 1.0)
            a = m * self._phi + phase + 0.6 * tilt_level            # (lat, 1)
            b = k * (self._lam - speed * hours)                     # (1, lon)
            field += amp * (np.cos(a) * np.cos(b) - np.sin(a) * np.sin(b))
        return field * self._envelope / np.sqrt(N_WAVES / 2.0)

    def _level_factor(self, level: int | None) -> float:
        return 1.0 if level is None else 1.0 + (1000.0 - level) / 1000.0

    def _compose(self, variable: str, level: int | None, anomaly: np.ndarray) -> np.ndarray:
        """Mean state + anomaly (multiplicative for q, so humidity stays positive)."""
        mean = self.mean_state(variable, level)
        if variable == "q":
            return mean * np.exp(WAVE_AMPLITUDE["q"] * anomaly)
        return mean + WAVE_AMPLITUDE[variable] * self._level_factor(level) * anomaly

    def noise(self, key: str) -> np.ndarray:
        """A smooth random field with unit rms, fully determined by ``key``."""
        rng = np.random.default_rng(_seed(f"noise|{self.seed}|{key}"))
        field = np.zeros(self.grid.shape)
        for _ in range(N_NOISE_MODES):
            k, m = rng.integers(1, 10), rng.integers(1, 8)
            a = m * self._phi + rng.uniform(0, 2 * np.pi)
            b = k * self._lam + rng.uniform(0, 2 * np.pi)
            field += rng.normal() * np.cos(a) * np.cos(b)
        field *= np.cos(self._phi)
        return field / max(float(np.sqrt(np.mean(field ** 2))), 1e-12)

    # -- fields --------------------------------------------------------------------------------
    def field(self, variable: str, level: int | None, valid_time: datetime, error: float = 0.0,
              error_key: str = "") -> np.ndarray:
        """Truth at ``valid_time`` plus ``error`` x a smooth noise field (relative to the wave size)."""
        anomaly = self._wave_anomaly(variable, level, _hours(valid_time))
        if error:
            anomaly = anomaly + error * self.noise(f"{error_key}|{_level_key(variable, level)}")
        return self._compose(variable, level, anomaly).astype(np.float32)

    def dataset(self, plane, variables=None, attrs: dict | None = None) -> xr.Dataset:  # noqa: ANN001
        """A contract dataset for one valid time from ``plane(variable, level) -> (lat, lon)``."""
        data = {}
        for variable in variables or ALL_VARIABLES:
            if variable in LEVEL_VARIABLES:
                stack = np.stack([plane(variable, level) for level in PRESSURE_LEVELS])
                data[variable] = (("pressure_level", "lat", "lon"), stack, {"units": UNITS[variable]})
            else:
                data[variable] = (("lat", "lon"), plane(variable, None), {"units": UNITS[variable]})
        coords = {"lat": self.lat, "lon": self.lon}
        if any(v in LEVEL_VARIABLES for v in variables or ALL_VARIABLES):
            coords["pressure_level"] = np.array(PRESSURE_LEVELS, dtype=np.int32)
        return xr.Dataset(data, coords=coords, attrs=attrs or {})

    def truth(self, valid_time: datetime, variables=None) -> xr.Dataset:  # noqa: ANN001
        """The true atmosphere at ``valid_time``."""
        return self.dataset(lambda v, lev: self.field(v, lev, valid_time), variables,
                            {"source": "synthetic truth", "valid_time": _utc(valid_time).isoformat()})

    def era5(self, valid_time: datetime, variables=None) -> xr.Dataset:  # noqa: ANN001
        """ERA5 of the world: the truth itself."""
        return self.truth(valid_time, variables).assign_attrs(source="synthetic ERA5")

    def gfs_analysis(self, valid_time: datetime, variables=None) -> xr.Dataset:  # noqa: ANN001
        """GFS analysis: truth plus a small analysis error."""
        key = f"gfs_analysis|{_utc(valid_time).isoformat()}"
        return self.dataset(lambda v, lev: self.field(v, lev, valid_time, ANALYSIS_ERROR, key), variables,
                            {"source": "synthetic GFS analysis", "valid_time": _utc(valid_time).isoformat()})

    def gfs_forecast(self, init_time: datetime, lead_hours: int, variables=None) -> xr.Dataset:  # noqa: ANN001
        """GFS forecast from ``init_time``: truth at the valid time plus an error growing with lead."""
        valid = _utc(init_time) + timedelta(hours=lead_hours)
        key = f"gfs_forecast|{_utc(init_time).isoformat()}|{lead_hours}"
        return self.dataset(
            lambda v, lev: self.field(v, lev, valid, gfs_forecast_error(lead_hours), key), variables,
            {"source": "synthetic GFS forecast", "init_time": _utc(init_time).isoformat(), "lead_hours": lead_hours})

    def climatology(self, valid_time: datetime, variables=None) -> xr.Dataset:  # noqa: ANN001
        """Climatology: the time mean, i.e. the zonal-mean state broadcast over longitude."""
        shape = self.grid.shape

        def plane(variable: str, level: int | None) -> np.ndarray:
            return np.broadcast_to(self.mean_state(variable, level), shape).astype(np.float32)

        return self.dataset(plane, variables, {"source": "synthetic climatology"})
