"""Seeded synthetic cases for the ``deployed`` scoring profile's golden tests.

Each case is a dict of plain numpy arrays on a small grid: per field (variable, level) the miner's
forecast, the truth, the climatology and (day-1) the GFS reference. The numbers in
``gaia_v2_9_96.json`` beside this file were produced by running Gaia v2.9.96's own scoring code
(commit b3c98e0: ``calculate_era5_miner_score`` and ``_calculate_and_store_aggregated_era5_score``
of ``processing/weather_logic.py``, ``evaluate_miner_forecast_day1`` of
``weather_scoring_mechanism.py``, with its pinned numpy 2.2.6, pandas 2.3.2, xarray 2025.6.1,
scipy 1.15.3, xskillscore 0.0.26) on exactly these arrays, outside the project: a scratch venv
importing those modules from Gaia's source with its database, HTTP and store-verification calls
replaced by in-memory stand-ins, and Gaia's own configuration defaults (``weather_task.py``:
coverage 0.9985, edge salvage on, the variable lists of ``GAIA_ERA5_RUNS`` / ``GAIA_DAY1_RUNS`` as
``final_scoring_variables_levels`` / ``day1_variables_levels_to_score``). The forecast was opened
as numpy arrays (not dask). Only the resulting numbers are kept here; none of Gaia's code is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SURFACE = ("2t", "10u", "10v", "msl")
LEVELS = (50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000)
LEVEL_VARS = ("t", "u", "v", "q", "z")

# (mean, pole-to-equator amplitude, anomaly sd, forecast error sd) per variable
SCALES = {
    "2t": (275.0, 30.0, 3.0, 1.5), "10u": (0.0, 5.0, 3.0, 2.0), "10v": (0.0, 4.0, 3.0, 2.0),
    "msl": (101000.0, 1200.0, 500.0, 250.0), "t": (240.0, 20.0, 2.0, 1.2), "u": (5.0, 12.0, 5.0, 3.0),
    "v": (0.0, 6.0, 4.0, 3.0), "q": (2e-3, 2e-3, 2e-4, 1e-4), "z": (50000.0, 2500.0, 300.0, 120.0),
}


def grid(rows: int = 19, cols: int = 36) -> tuple[np.ndarray, np.ndarray]:
    """A regular grid: lat 90 -> -90 over ``rows``, lon 0 .. 360 - step over ``cols``."""
    return np.linspace(90.0, -90.0, rows), np.arange(cols) * (360.0 / cols)


@dataclass
class Case:
    """Arrays of one case on (lat, lon); keys (variable, level) with level None at the surface."""

    lat: np.ndarray
    lon: np.ndarray
    forecast: dict = field(default_factory=dict)
    truth: dict = field(default_factory=dict)
    climatology: dict = field(default_factory=dict)
    reference: dict = field(default_factory=dict)
    # The forecast on a grid of its own (the miner's layout) when it differs from the truth's, with
    # the field its error is measured from on that grid (``at_lead``); leads the forecast lacks.
    forecast_lat: np.ndarray | None = None
    forecast_lon: np.ndarray | None = None
    forecast_truth: dict | None = None
    missing_leads: tuple = ()

    @property
    def grid_of_forecast(self) -> tuple[np.ndarray, np.ndarray]:
        """(lat, lon) of the forecast planes as stored."""
        return (self.lat if self.forecast_lat is None else self.forecast_lat,
                self.lon if self.forecast_lon is None else self.forecast_lon)


def _keys(level_vars=LEVEL_VARS, surface=SURFACE):  # noqa: ANN001, ANN202
    return [(v, None) for v in surface] + [(v, lev) for v in level_vars for lev in LEVELS]


def make_case(seed: int, lat: np.ndarray, lon: np.ndarray, keys=None, reference: bool = False,  # noqa: ANN001
              error_scale: float = 1.0) -> Case:
    """Climatology = a zonal pattern; truth = climatology + a random anomaly; forecast = truth + a
    random error (``error_scale`` times the variable's forecast error sd); with ``reference``, a GFS
    reference = truth + an error 1.3 times the forecast's."""
    rng = np.random.default_rng(seed)
    la, lo = np.meshgrid(np.deg2rad(lat), np.deg2rad(lon), indexing="ij")
    case = Case(lat, lon)
    for i, key in enumerate(keys or _keys()):
        variable, level = key
        mean, amp, sd, err = SCALES[variable]
        tilt = 1.0 if level is None else (0.6 + level / 1000.0)
        clim = mean * tilt + amp * np.cos(la) + 0.2 * amp * np.sin(2 * lo + i)
        anomaly = sd * (rng.standard_normal(la.shape) + np.cos(3 * lo + i) * np.sin(la))
        truth = clim + anomaly
        case.climatology[key] = clim
        case.truth[key] = truth
        case.forecast[key] = truth + error_scale * err * rng.standard_normal(la.shape)
        if reference:
            case.reference[key] = truth + 1.3 * err * rng.standard_normal(la.shape)
    return case


# -- ERA5 cases -----------------------------------------------------------------------------------
def era5_plain() -> Case:
    """Every variable, every level; ordinary errors."""
    return make_case(11, *grid())


def era5_negative_level() -> Case:
    """As plain, but t at 850 hPa is far worse than climatology (negative skill at one level)."""
    case = make_case(12, *grid())
    rng = np.random.default_rng(120)
    case.forecast[("t", 850)] = case.truth[("t", 850)] + 12.0 * rng.standard_normal(case.truth[("t", 850)].shape)
    return case


def era5_nan_spread() -> Case:
    """0.25-degree latitudes, 16 longitudes: a few NaN cells that Gaia's regridding spreads to
    their neighbours; coverage stays above 0.9985, the rest is filled from climatology."""
    case = make_case(13, np.linspace(90.0, -90.0, 721), np.arange(16) * 22.5)
    for (variable, level), cells in {("2t", None): [(100, 3), (0, 5)], ("z", 500): [(360, 0)],
                                     ("u", 1000): [(720, 15)]}.items():
        for r, c in cells:
            case.forecast[(variable, level)][r, c] = np.nan
    return case


def as_720_ascending(values: np.ndarray) -> np.ndarray:
    """A plane (or the latitudes) as an Aurora-style miner writes it: south pole row dropped, rows
    ascending."""
    return values[:-1][::-1]


def aurora_layout(case: Case) -> Case:
    """The case with its forecast stored as an Aurora-style miner writes it (``as_720_ascending``)."""
    case.forecast_truth = {key: as_720_ascending(t) for key, t in case.truth.items()}
    case.forecast = {key: as_720_ascending(f) for key, f in case.forecast.items()}
    case.forecast_lat = as_720_ascending(case.lat)
    return case


def era5_720_ascending() -> Case:
    """An Aurora-style forecast: 720 rows (no south pole row), latitudes ascending; truth on 721.
    Gaia's edge salvage fills the missing pole row from its neighbour but for the two corners."""
    return aurora_layout(make_case(14, np.linspace(90.0, -90.0, 721), np.arange(16) * 22.5))


def era5_720_on_1p5() -> Case:
    """A 0.25-degree Aurora-style forecast (720 x 1440, ascending) scored on the 1.5-degree ERA5 grid
    (121 x 240): the pole row is outside the forecast's rows (1/121 of each field, below 0.9985
    coverage) until Gaia's edge salvage fills it from the next row, before its coverage guard."""
    fine = make_case(19, *grid(721, 1440), keys=_keys(level_vars=("t", "z"), surface=("2t", "msl")))
    coarse = Case(fine.lat[::6], fine.lon[::6])
    for key in fine.truth:
        coarse.truth[key] = fine.truth[key][::6, ::6]
        coarse.climatology[key] = fine.climatology[key][::6, ::6]
    coarse.forecast = {key: as_720_ascending(f) for key, f in fine.forecast.items()}
    coarse.forecast_truth = {key: as_720_ascending(t) for key, t in fine.truth.items()}
    coarse.forecast_lat, coarse.forecast_lon = as_720_ascending(fine.lat), fine.lon
    return coarse


def era5_low_coverage() -> Case:
    """A NaN block (0.5 % of 2t) below the 0.9985 coverage guard: ERA5 scoring fails."""
    case = make_case(15, np.linspace(90.0, -90.0, 721), np.arange(16) * 22.5)
    case.forecast[("2t", None)][200:240, 4:5] = np.nan
    return case


def era5_nan_acc() -> Case:
    """10u forecast equal to the climatology: its anomaly is flat, the ACC is NaN."""
    case = make_case(16, *grid())
    case.forecast[("10u", None)] = case.climatology[("10u", None)].copy()
    return case


def era5_missing_variable() -> Case:
    """q is missing from the forecast."""
    case = make_case(17, *grid())
    for level in LEVELS:
        del case.forecast[("q", level)]
    return case


# -- day-1 cases ----------------------------------------------------------------------------------
DAY1_KEYS = [("2t", None), ("msl", None), ("10u", None), ("10v", None), ("z", 500)]


def day1_plain() -> Case:
    return make_case(21, *grid(), keys=DAY1_KEYS, reference=True)


def day1_out_of_range() -> Case:
    """2t shifted by +60 K (above 340 K in places; correlation, bias-corrected skill and ACC
    unchanged): the deployed step runs no climatology range check, the sound profile does."""
    case = make_case(22, *grid(), keys=DAY1_KEYS, reference=True)
    case.forecast[("2t", None)] = case.forecast[("2t", None)] + 60.0
    return case


def day1_nan() -> Case:
    """A NaN in 2t and one in msl: skipped in the means, not dropping the variable."""
    case = make_case(23, *grid(), keys=DAY1_KEYS, reference=True)
    case.forecast[("2t", None)][7, 9] = np.nan
    case.forecast[("msl", None)][12, 30] = np.nan
    return case


def day1_insane_clone() -> Case:
    """10u within the clone distance of the GFS reference but failing the pattern correlation check
    (the reference is almost flat): the deployed clamp does not count it."""
    case = make_case(24, *grid(), keys=DAY1_KEYS, reference=True)
    rng = np.random.default_rng(240)
    flat = 5.0 + 0.01 * rng.standard_normal(case.lat.size * case.lon.size).reshape(case.lat.size, case.lon.size)
    case.reference[("10u", None)] = flat
    case.forecast[("10u", None)] = flat + 0.05 * rng.standard_normal(flat.shape)
    return case


def day1_clone() -> Case:
    """msl a near copy of the GFS reference (sane): the clamp applies in both profiles."""
    case = make_case(25, *grid(), keys=DAY1_KEYS, reference=True)
    rng = np.random.default_rng(250)
    case.forecast[("msl", None)] = case.reference[("msl", None)] + 5.0 * rng.standard_normal(case.lat.size * case.lon.size).reshape(case.lat.size, case.lon.size)
    return case


def era5_nan_acc_level() -> Case:
    """t, q and v at 50 hPa equal to the climatology at lead 24 h (flat anomalies: NaN ACC at one
    level): Gaia keeps those variables' RMSE at that lead and drops their ACC and skill."""
    case = make_case(18, *grid())
    for variable in ("t", "q", "v"):
        case.forecast[(variable, 50)] = case.climatology[(variable, 50)].copy()
    return case


def era5_honest_level() -> Case:
    """``era5_nan_acc_level`` before its 50 hPa fields were replaced (the honest forecast)."""
    return make_case(18, *grid())


def era5_nan_acc_single_level() -> Case:
    """t850 equal to the climatology: a NaN ACC fails Gaia's ERA5 scoring when ``t850`` is an entry
    of its own in the variable list, as a surface one does."""
    case = make_case(20, *grid())
    case.forecast[("t", 850)] = case.climatology[("t", 850)].copy()
    return case


def era5_missing_lead() -> Case:
    """The forecast lacks the 48 h step: Gaia scores lead 24 h and counts 48 h as 0."""
    case = make_case(21, *grid())
    case.missing_leads = (48,)
    return case


# -- day-1 NaN cases ------------------------------------------------------------------------------
def day1_all_nan() -> Case:
    """2t entirely NaN: Gaia skips it (its correlation with GFS is NaN) and scores the others."""
    case = make_case(26, *grid(), keys=DAY1_KEYS, reference=True)
    case.forecast[("2t", None)] = np.full_like(case.forecast[("2t", None)], np.nan)
    return case


def day1_mostly_nan() -> Case:
    """msl NaN on 95 % of the grid: Gaia scores it on the finite 5 % (every mean skips NaNs)."""
    case = make_case(27, *grid(), keys=DAY1_KEYS, reference=True)
    rng = np.random.default_rng(270)
    msl = case.forecast[("msl", None)]
    msl[rng.random(msl.shape) < 0.95] = np.nan
    return case


ERA5_CASES = {"plain": era5_plain, "negative_level": era5_negative_level, "nan_spread": era5_nan_spread,
              "720_ascending": era5_720_ascending, "low_coverage": era5_low_coverage, "nan_acc": era5_nan_acc,
              "missing_variable": era5_missing_variable, "720_on_1p5": era5_720_on_1p5,
              "nan_acc_level": era5_nan_acc_level, "honest_level": era5_honest_level,
              "nan_acc_single_level": era5_nan_acc_single_level, "missing_lead": era5_missing_lead}
DAY1_CASES = {"plain": day1_plain, "out_of_range": day1_out_of_range, "nan": day1_nan,
              "insane_clone": day1_insane_clone, "clone": day1_clone, "all_nan": day1_all_nan,
              "mostly_nan": day1_mostly_nan}
GAIA_DEFAULT_ERA5 = "2t,10u,10v,msl,t,u,v,q,z"
GAIA_DEFAULT_DAY1 = "2t,msl,10u,10v,z500"
# Golden runs: name -> (case, the variable list Gaia's config held, comma-separated as --variables takes it).
GAIA_ERA5_RUNS = {name: (name, GAIA_DEFAULT_ERA5) for name in ERA5_CASES if name != "720_on_1p5"}
GAIA_ERA5_RUNS.update({
    "720_on_1p5": ("720_on_1p5", "2t,msl,t,z"),
    "subset": ("plain", "2t,msl,t500,t850,z500,z850"),
    "subset_lacking": ("missing_variable", "2t,10u,10v,msl,t,u,v,z"),
    "nan_acc_single_level": ("nan_acc_single_level", "2t,msl,t850,z500"),
    "single_level_beside": ("nan_acc_single_level", "2t,msl,t500,z500"),
})
GAIA_DAY1_RUNS = {name: (name, GAIA_DEFAULT_DAY1) for name in DAY1_CASES}
GAIA_DAY1_RUNS["subset"] = ("plain", "2t,msl,z500")
ERA5_GOLDEN_LEADS = (24, 48)


def at_lead(case: Case, lead_hours: int) -> Case:
    """The case at a later lead: the same truth and climatology, the forecast error grown with the
    lead (lead 24 h is the case as built, 48 h doubles the error, ...)."""
    if lead_hours == ERA5_GOLDEN_LEADS[0]:
        return case
    k = lead_hours / ERA5_GOLDEN_LEADS[0]
    base = case.forecast_truth or case.truth
    forecast = {key: base[key] + k * (f - base[key]) for key, f in case.forecast.items()}
    return Case(case.lat, case.lon, forecast, case.truth, case.climatology, case.reference, case.forecast_lat,
                case.forecast_lon, case.forecast_truth, case.missing_leads)
