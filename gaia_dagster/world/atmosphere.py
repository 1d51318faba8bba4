"""A deterministic synthetic atmosphere: the embedded world's truth, GFS, ERA5 and climatology.

Truth = a zonal-mean state per variable and level (the climatology) + travelling waves. Twelve
waves are shared by every variable: zonal wave numbers 2..7, moving eastward by 6..15 degrees of
longitude a day, each growing and decaying over a 4..12 day life cycle, under a mid-latitude
envelope; each variable and level sees them with its own amplitude and phase. Because the waves
move and evolve, persistence loses skill with lead time (its 24 h z500 error is already about
the anomaly variance); because every wave has zonal wave number >= 2 and travels, the zonal mean
and the time mean of the anomaly are zero, so the climatology is exactly the zonal-mean state.

Errors (GFS analysis, GFS forecast, a miner's forecast) are smooth random fields on a low-order
lat x lon basis with coefficients seeded by sha256 of a string such as
``"gfs_analysis|2026-10-20T12:00:00+00:00"``; nothing depends on the clock or on Python's salted
``hash``. They are a fixed fraction of the local wave variability: 4 % for the analysis,
0.10 + 0.75 * lead / 240 for the GFS forecast (2t ~0.6 K and z500 ~60 m2/s2 rms at 12 h).

Every field is ``mean + coefficients @ basis``, computed for all planes of a valid time with one
batched matrix product: ~7 ms for the truth and ~25 ms for a forecast with errors at 1.5 degree.
Wave weights sum to 1 and the envelope is <= 0.58, which bounds every anomaly and keeps the fields
inside the day-1 sanity ranges of GAIA_SPEC 4; humidity is multiplicative so ``q >= 0`` always.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from typing import Sequence

import numpy as np
import xarray as xr

from gaia_dagster.core.contract import ALL_VARIABLES, LEVEL_VARIABLES, PRESSURE_LEVELS, UNITS, Grid

G = 9.80665                      # m s-2
R_DRY = 287.05                   # J kg-1 K-1
EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)
N_WAVES = 12
WAVE_NUMBERS = (2, 7)            # inclusive range of zonal wave numbers
WAVE_SPEEDS_DEG_PER_DAY = (6.0, 15.0)
LIFE_CYCLE_DAYS = (4.0, 12.0)    # each wave grows and decays: amplitude x (1 + cos(w t + psi)) / 2
# time mean of ((1 + cos) / 2)^2 x cos^2(carrier) = (1/4 + 1/8) x 1/2
MEAN_SQUARE_FACTOR = (0.25 + 0.125) * 0.5
NOISE_LAT_ORDER = 5              # latitude harmonics of the error basis
NOISE_LON_ORDER = 8              # longitude harmonics of the error basis

ANALYSIS_ERROR = 0.04            # GFS analysis error, as a fraction of the local anomaly std
GFS_ERROR_AT_0H = 0.10           # GFS forecast error fraction: 0.10 + 0.75 * lead / 240
GFS_ERROR_GROWTH_PER_240H = 0.75

Plane = tuple[str, int | None]


# -- time and seeds ------------------------------------------------------------------------------
def as_utc(moment: datetime) -> datetime:
    """A timezone-aware UTC datetime (naive input is taken to be UTC already)."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def hours_since_epoch(moment: datetime) -> float:
    """Hours from 2000-01-01 00 UTC, the wave clock."""
    return (as_utc(moment) - EPOCH).total_seconds() / 3600.0


def stable_seed(key: str) -> int:
    """A 64-bit seed from sha256 of a string (never Python's salted ``hash``)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")


def gfs_forecast_error(lead_hours: float) -> float:
    """GFS forecast error as a fraction of the local anomaly std: 0.10 + 0.75 * lead / 240.

    At 12 h that is ~0.145 (2t ~0.7 K, z500 ~75 m2/s2 rms); at 240 h the error equals the anomaly
    itself, so the GFS has no skill left over climatology.
    """
    return GFS_ERROR_AT_0H + GFS_ERROR_GROWTH_PER_240H * float(lead_hours) / 240.0


def contract_planes(variables: Sequence[str] | None = None) -> list[Plane]:
    """(variable, level) planes of the contract in order; level None for surface variables."""
    planes: list[Plane] = []
    for variable in variables or ALL_VARIABLES:
        if variable not in ALL_VARIABLES:
            raise KeyError(f"{variable!r} is not a contract variable (expected one of {ALL_VARIABLES})")
        planes.extend([(variable, p) for p in PRESSURE_LEVELS] if variable in LEVEL_VARIABLES else [(variable, None)])
    return planes


def variable_blocks(variables: Sequence[str] | None = None) -> list[slice]:
    """Slices of each variable's planes in ``contract_planes(variables)`` order."""
    blocks, start = [], 0
    for variable in variables or ALL_VARIABLES:
        size = len(PRESSURE_LEVELS) if variable in LEVEL_VARIABLES else 1
        blocks.append(slice(start, start + size))
        start += size
    return blocks


# -- the zonal-mean state ---------------------------------------------------------------------------
def _gauss(x: np.ndarray, centre: float, width: float) -> np.ndarray:
    """exp(-((x - centre) / width)^2)."""
    return np.exp(-(((x - centre) / width) ** 2))


def mean_2t(lat_deg: np.ndarray) -> np.ndarray:
    """2 m temperature: 300 K at the equator falling to 245 K at the poles (300 - 55 sin^2 lat)."""
    return 300.0 - 55.0 * np.sin(np.deg2rad(lat_deg)) ** 2


def mean_msl(lat_deg: np.ndarray) -> np.ndarray:
    """Mean sea-level pressure: equatorial trough, subtropical highs, sub-polar lows (+-~1300 Pa)."""
    phi = np.deg2rad(lat_deg)
    return 101325.0 - 800.0 * np.cos(6.0 * phi) - 500.0 * _gauss(lat_deg, -62.0, 10.0)


def mean_10u(lat_deg: np.ndarray) -> np.ndarray:
    """10 m zonal wind: trade easterlies (-6 m/s), mid-latitude westerlies (+8 m/s)."""
    return 8.0 * _gauss(np.abs(lat_deg), 48.0, 12.0) - 6.0 * _gauss(lat_deg, 0.0, 16.0)


def mean_10v(lat_deg: np.ndarray) -> np.ndarray:
    """10 m meridional wind: trades converging on the equator (+-2 m/s)."""
    return -2.0 * np.sin(np.deg2rad(2.0 * lat_deg)) * _gauss(lat_deg, 0.0, 25.0)


def mean_t(lat_deg: np.ndarray, p: float) -> np.ndarray:
    """Temperature on a level: a tropospheric lapse T_s (p/1000)^kappa (weaker towards the
    poles, where inversions keep the lower troposphere warm) smoothly capped from below by a
    stratosphere at 200 K (tropics) .. 218 K (poles)."""
    s2 = np.sin(np.deg2rad(lat_deg)) ** 2
    kappa = 0.19 * (1.0 - 0.45 * s2)
    troposphere = (mean_2t(lat_deg) - 1.0) * (p / 1000.0) ** kappa
    stratosphere = 200.0 + 18.0 * s2
    return stratosphere + 4.0 * np.logaddexp(0.0, (troposphere - stratosphere) / 4.0)


def mean_z_profile(lat_deg: np.ndarray, levels: Sequence[int] = PRESSURE_LEVELS) -> np.ndarray:
    """Geopotential on each level (levels, lat) by the hypsometric equation:
    z(p) = z(1000) + R_d * integral of t d(ln p) from p to 1000 hPa (trapezoid on the levels),
    with z(1000) = R_d * T_s * ln(msl / 1000 hPa)."""
    order = np.argsort(levels)[::-1]                      # 1000 hPa first
    p = np.asarray(levels, dtype=np.float64)[order]
    t = np.stack([mean_t(lat_deg, float(pk)) for pk in p])
    z_bottom = R_DRY * mean_2t(lat_deg) * np.log(mean_msl(lat_deg) / 100000.0)
    steps = R_DRY * 0.5 * (t[1:] + t[:-1]) * np.log(p[:-1] / p[1:])[:, None]
    z = z_bottom + np.concatenate([np.zeros((1, lat_deg.size)), np.cumsum(steps, axis=0)])
    out = np.empty_like(z)
    out[order] = z
    return out


def mean_q(lat_deg: np.ndarray, p: float) -> np.ndarray:
    """Specific humidity: ~0.016 kg/kg at the tropical surface, decaying with latitude and as
    (p/1000)^3.2 with height, floored at a stratospheric 3e-6."""
    surface = 0.0015 + 0.0150 * _gauss(lat_deg, 0.0, 28.0)
    return surface * (p / 1000.0) ** 3.2 + 3e-6


def mean_u(lat_deg: np.ndarray, p: float) -> np.ndarray:
    """Zonal wind on a level: the surface pattern fading with height plus a subtropical jet
    (~38 m/s at 35 degrees near 220 hPa)."""
    jet = 35.0 * np.exp(-((np.log(p / 220.0) / 0.8) ** 2)) + 3.0
    return mean_10u(lat_deg) * (p / 1000.0) ** 2 + jet * _gauss(np.abs(lat_deg), 35.0, 12.0)


def mean_v(lat_deg: np.ndarray, p: float) -> np.ndarray:
    """Meridional wind on a level: the Hadley cell, inflow below ~700 hPa, outflow aloft."""
    return mean_10v(lat_deg) * (1.6 * (p / 1000.0) ** 2 - 0.6)


def mean_state(variable: str, level: int | None, lat_deg: np.ndarray) -> np.ndarray:
    """The zonal-mean state (= climatology) of one plane, shape (lat,)."""
    surface = {"2t": mean_2t, "msl": mean_msl, "10u": mean_10u, "10v": mean_10v}
    if variable in surface:
        return surface[variable](lat_deg)
    if variable == "z":
        return mean_z_profile(lat_deg)[PRESSURE_LEVELS.index(int(level))]
    on_level = {"t": mean_t, "q": mean_q, "u": mean_u, "v": mean_v}
    if variable in on_level:
        return on_level[variable](lat_deg, float(level))
    raise KeyError(f"{variable!r} is not a contract variable")


# -- wave amplitudes ------------------------------------------------------------------------------
def wave_amplitude(variable: str, level: int | None) -> float:
    """Scale of a plane's waves (q: a fraction of the mean, multiplicative).

    The excursion can never exceed 0.58 of it (envelope maximum, wave weights summing to 1) and
    in practice stays under ~0.35; the global anomaly rms is ~0.07 of it: 2t ~4.6 K, msl ~8 hPa,
    z500 ~400 m2/s2, 10u ~2.7 m/s. z grows with height, winds peak at the jet, t is weaker in
    the stratosphere.
    """
    if level is None:
        return {"2t": 65.0, "msl": 10800.0, "10u": 54.0, "10v": 54.0}[variable]
    p = float(level)
    height = np.log(1013.25 / p) / np.log(1013.25 / 50.0)          # 0 at the ground, 1 at 50 hPa
    jet = np.exp(-((np.log(p / 250.0) / 0.7) ** 2))
    if variable == "t":
        return 50.0 if p >= 200 else 29.0
    if variable == "z":
        return 2900.0 + 13700.0 * height ** 0.8
    if variable in ("u", "v"):
        return 54.0 + 76.0 * jet
    if variable == "q":
        return 1.6
    raise KeyError(variable)


def wave_envelope(lat_deg: np.ndarray) -> np.ndarray:
    """Latitude envelope of the waves: cos^2(lat) x a mid-latitude bump; peaks at 0.58 near
    36 degrees, 0.35 at the equator, 0 at the poles."""
    return np.cos(np.deg2rad(lat_deg)) ** 2 * (0.35 + 0.65 * _gauss(np.abs(lat_deg), 45.0, 20.0))


class SyntheticAtmosphere:
    """The embedded world on a regular grid (1.5 degree by default, any ``Grid`` resolution)."""

    def __init__(self, resolution: float = 1.5, seed: int = 0):
        self.grid = Grid(resolution)
        self.seed = seed
        self.lat = self.grid.lat
        self.lon = self.grid.lon
        self._lam = np.deg2rad(self.lon)
        self._planes = contract_planes()
        self._index = {plane: i for i, plane in enumerate(self._planes)}
        self._draw_waves()
        self._build_planes()
        self._build_noise_basis()

    # -- set-up ---------------------------------------------------------------------------------
    def _draw_waves(self) -> None:
        """Wave numbers, phase speeds (rad/h), latitude phases, weights (summing to 1) and life
        cycles (rad/h and phase)."""
        rng = np.random.default_rng(stable_seed(f"waves|{self.seed}"))
        self._k = rng.integers(WAVE_NUMBERS[0], WAVE_NUMBERS[1] + 1, N_WAVES).astype(np.float64)
        speeds = rng.uniform(*WAVE_SPEEDS_DEG_PER_DAY, N_WAVES)
        self._speed = np.deg2rad(speeds) / 24.0
        self._m = rng.uniform(1.0, 4.0, N_WAVES)
        self._phase = rng.uniform(0.0, 2 * np.pi, N_WAVES)
        weights = rng.uniform(0.5, 1.0, N_WAVES)
        self._weight = weights / weights.sum()
        self._life_rate = 2 * np.pi / (24.0 * rng.uniform(*LIFE_CYCLE_DAYS, N_WAVES))
        self._life_phase = rng.uniform(0.0, 2 * np.pi, N_WAVES)

    def _wave_coefficients(self, variable: str, level: int | None) -> np.ndarray:
        """(lat, 2 N) coefficients: anomaly = coef @ [cos k(lam - ct); sin k(lam - ct)].

        Wave n contributes a_n E(lat) cos(k_n (lam - c_n t) + Y_n), Y_n = m_n lat + phase_n + a
        per-variable offset + a westward tilt with height; cos(X + Y) = cos X cos Y - sin X sin Y.
        """
        rng = np.random.default_rng(stable_seed(f"wave_phase|{self.seed}|{variable}"))
        offset = rng.uniform(0.0, 2 * np.pi, N_WAVES)
        tilt = 0.0 if level is None else 0.5 * np.log(1000.0 / level)
        y = np.deg2rad(self.lat)[:, None] * self._m + self._phase + offset + tilt      # (lat, N)
        scale = wave_amplitude(variable, level) * wave_envelope(self.lat)[:, None] * self._weight
        return np.concatenate([scale * np.cos(y), -scale * np.sin(y)], axis=1)

    def _build_planes(self) -> None:
        """Per plane: the zonal mean (lat,), wave coefficients (lat, 2N) and the anomaly's
        standard deviation over time at each latitude (lat,)."""
        self._mean = np.stack([mean_state(v, lev, self.lat) for v, lev in self._planes])
        self._coef = np.stack([self._wave_coefficients(v, lev) for v, lev in self._planes])
        self._anomaly_std = np.sqrt(MEAN_SQUARE_FACTOR * (self._coef ** 2).sum(axis=2))   # (planes, lat)
        self._relative = np.array([v == "q" for v, _ in self._planes])

    def _build_noise_basis(self) -> None:
        """Low-order smooth basis for error fields: cos(lat) x harmonics in lat and lon."""
        phi = np.deg2rad(self.lat)
        j = np.arange(NOISE_LAT_ORDER + 1)
        lat_basis = np.concatenate([np.cos(np.outer(phi, j)), np.sin(np.outer(phi, j[1:]))], axis=1)
        self._noise_lat = lat_basis * np.cos(phi)[:, None]                            # (lat, L)
        k = np.arange(1, NOISE_LON_ORDER + 1)
        self._noise_lon = np.concatenate(
            [np.ones((1, self.lon.size)), np.cos(np.outer(k, self._lam)), np.sin(np.outer(k, self._lam))])
        lat_order = np.concatenate([j, j[1:]])
        lon_order = np.concatenate([[0], k, k])
        self._noise_spectrum = 1.0 / (1.0 + lat_order[:, None] + lon_order[None, :])   # (L, K)
        self._noise_gram_lat = self._noise_lat.T @ self._noise_lat
        self._noise_gram_lon = self._noise_lon @ self._noise_lon.T

    # -- fields ---------------------------------------------------------------------------------
    def plane_indices(self, variables: Sequence[str] | None = None) -> np.ndarray:
        """Indices of the planes of ``variables`` (all contract variables by default)."""
        return np.array([self._index[plane] for plane in contract_planes(variables)])

    def wave_anomaly(self, valid_time: datetime, index: np.ndarray) -> np.ndarray:
        """Wave anomaly of the chosen planes at a valid time, (planes, lat, lon), float64."""
        hours = hours_since_epoch(valid_time)
        x = np.outer(self._k, self._lam) - (self._k * self._speed * hours)[:, None]
        life = (0.5 + 0.5 * np.cos(self._life_rate * hours + self._life_phase))[:, None]
        basis = np.concatenate([life * np.cos(x), life * np.sin(x)])                    # (2N, lon)
        return self._coef[index] @ basis

    def noise(self, key: str, index: np.ndarray) -> np.ndarray:
        """Smooth random fields, unit rms each, (planes, lat, lon), fully determined by ``key``.

        field = L @ C @ K with random C; its rms follows from the basis Gram matrices, so no pass
        over the grid is needed to normalise it.
        """
        rng = np.random.default_rng(stable_seed(f"noise|{self.seed}|{key}"))
        coef = rng.standard_normal((len(self._planes),) + self._noise_spectrum.shape)[index] * self._noise_spectrum
        sum_square = ((self._noise_gram_lat @ coef) * (coef @ self._noise_gram_lon)).sum(axis=(1, 2))
        mean_square = sum_square / (self.lat.size * self.lon.size)
        coef = coef / np.sqrt(np.maximum(mean_square, 1e-24))[:, None, None]
        return self._noise_lat @ (coef @ self._noise_lon)                        # (P, lat, lon)

    def planes(self, valid_time: datetime, variables: Sequence[str] | None = None,
               error: float = 0.0, error_key: str = "") -> np.ndarray:
        """Truth of the chosen planes at ``valid_time`` plus ``error`` x (the anomaly's standard
        deviation at each latitude) x a smooth unit-rms noise field seeded by ``error_key``, so the
        error is a fixed fraction of the local variability; (planes, lat, lon) float32.

        Additive for every variable but q, whose mean is scaled by (1 + anomaly) and whose error
        is a factor exp(error x rms x noise), so humidity stays positive.
        """
        index = self.plane_indices(variables)
        values = self.wave_anomaly(valid_time, index)
        perturbation = None
        if error:
            perturbation = self.noise(error_key, index)
            perturbation *= error * self._anomaly_std[index][:, :, None]
        out = np.empty(values.shape, dtype=np.float32)
        for block in variable_blocks(variables):
            out[block] = self._compose(index[block], values[block],
                                       None if perturbation is None else perturbation[block])
        return out

    def _compose(self, index: np.ndarray, anomaly: np.ndarray, perturbation: np.ndarray | None) -> np.ndarray:
        """One variable's planes: mean + anomaly (+ error); for q mean x (1 + anomaly) (x exp(error)).
        Works in place on ``anomaly``."""
        mean = self._mean[index][:, :, None]
        if self._relative[index[0]]:
            anomaly += 1.0
            anomaly *= mean
            if perturbation is not None:
                anomaly *= np.exp(perturbation)
            return anomaly
        anomaly += mean
        if perturbation is not None:
            anomaly += perturbation
        return anomaly

    def dataset(self, values: np.ndarray, variables: Sequence[str] | None = None,
                attrs: dict | None = None) -> xr.Dataset:
        """A contract dataset for one valid time from stacked planes (as ``planes`` returns)."""
        data, start = {}, 0
        for variable in variables or ALL_VARIABLES:
            if variable in LEVEL_VARIABLES:
                block = values[start:start + len(PRESSURE_LEVELS)]
                data[variable] = (("pressure_level", "lat", "lon"), block, {"units": UNITS[variable]})
                start += len(PRESSURE_LEVELS)
            else:
                data[variable] = (("lat", "lon"), values[start], {"units": UNITS[variable]})
                start += 1
        coords: dict[str, np.ndarray] = {"lat": self.lat, "lon": self.lon}
        if any(v in LEVEL_VARIABLES for v in variables or ALL_VARIABLES):
            coords["pressure_level"] = np.array(PRESSURE_LEVELS, dtype=np.int64)
        return xr.Dataset(data, coords=coords, attrs=attrs or {})

    def _state(self, valid_time: datetime, variables, error: float, key: str, attrs: dict) -> xr.Dataset:  # noqa: ANN001
        """Truth + error at a valid time as a contract dataset."""
        return self.dataset(self.planes(valid_time, variables, error, key), variables, attrs)

    # -- the sources ----------------------------------------------------------------------------
    def truth(self, valid_time: datetime, variables: Sequence[str] | None = None) -> xr.Dataset:
        """The true atmosphere at ``valid_time``: zonal-mean state + travelling waves."""
        valid = as_utc(valid_time).isoformat()
        return self._state(valid_time, variables, 0.0, "", {"source": "synthetic truth", "valid_time": valid})

    def era5(self, valid_time: datetime, variables: Sequence[str] | None = None) -> xr.Dataset:
        """ERA5 of the world: the truth itself."""
        return self.truth(valid_time, variables).assign_attrs(source="synthetic ERA5")

    def gfs_analysis(self, valid_time: datetime, variables: Sequence[str] | None = None) -> xr.Dataset:
        """GFS analysis: truth + a small smooth error (4% of the anomaly rms)."""
        valid = as_utc(valid_time).isoformat()
        return self._state(valid_time, variables, ANALYSIS_ERROR, f"gfs_analysis|{valid}",
                           {"source": "synthetic GFS analysis", "valid_time": valid})

    def gfs_forecast(self, init_time: datetime, lead_hours: int,
                     variables: Sequence[str] | None = None) -> xr.Dataset:
        """GFS forecast: truth at init + lead + a smooth error growing with lead (gfs_forecast_error)."""
        init = as_utc(init_time)
        valid = init + timedelta(hours=lead_hours)
        return self._state(valid, variables, gfs_forecast_error(lead_hours),
                           f"gfs_forecast|{init.isoformat()}|{lead_hours}",
                           {"source": "synthetic GFS forecast", "init_time": init.isoformat(),
                            "lead_hours": int(lead_hours), "valid_time": valid.isoformat()})

    def climatology(self, valid_time: datetime, variables: Sequence[str] | None = None) -> xr.Dataset:
        """Climatology: the time mean of the truth, which is the zonal-mean state."""
        index = self.plane_indices(variables)
        values = np.broadcast_to(self._mean[index][:, :, None], (index.size,) + self.grid.shape)
        return self.dataset(values.astype(np.float32), variables,
                            {"source": "synthetic climatology", "valid_time": as_utc(valid_time).isoformat()})
