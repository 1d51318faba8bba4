"""The forecast data contract (GAIA_SPEC section 3): variables, levels, grid and time steps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

SURFACE_VARIABLES: tuple[str, ...] = ("2t", "10u", "10v", "msl")
LEVEL_VARIABLES: tuple[str, ...] = ("t", "u", "v", "q", "z")
ALL_VARIABLES: tuple[str, ...] = SURFACE_VARIABLES + LEVEL_VARIABLES
PRESSURE_LEVELS: tuple[int, ...] = (50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000)
UNITS: dict[str, str] = {
    "2t": "K", "10u": "m s**-1", "10v": "m s**-1", "msl": "Pa",
    "t": "K", "u": "m s**-1", "v": "m s**-1", "q": "kg kg**-1", "z": "m**2 s**-2",
}

STEP_HOURS = 6
N_STEPS = 40
FORECAST_LEAD_HOURS: tuple[int, ...] = tuple(STEP_HOURS * (i + 1) for i in range(N_STEPS))
DAY1_LEAD_HOURS: tuple[int, ...] = (12,)
ERA5_LEAD_HOURS: tuple[int, ...] = tuple(range(24, 241, 24))
PREVIOUS_STEP = timedelta(hours=6)

CONTRACT_RESOLUTION = 0.25


@dataclass(frozen=True)
class Grid:
    """A regular lat/lon grid: lat 90 -> -90 descending, lon 0 -> 360 - resolution ascending."""

    resolution: float = CONTRACT_RESOLUTION

    @property
    def lat(self) -> np.ndarray:
        n = int(round(180.0 / self.resolution)) + 1
        return np.linspace(90.0, -90.0, n)

    @property
    def lon(self) -> np.ndarray:
        n = int(round(360.0 / self.resolution))
        return np.arange(n) * self.resolution

    @property
    def shape(self) -> tuple[int, int]:
        return (self.lat.size, self.lon.size)


def valid_times(init_time: datetime, lead_hours: tuple[int, ...] = FORECAST_LEAD_HOURS) -> list[datetime]:
    """Valid times T0 + h for each lead h (T0 itself is not part of a forecast)."""
    return [init_time + timedelta(hours=h) for h in lead_hours]


def variable_dims(variable: str) -> tuple[str, ...]:
    """Dims of a contract variable in a forecast store: surface (time, lat, lon), else with level."""
    if variable in SURFACE_VARIABLES:
        return ("time", "lat", "lon")
    if variable in LEVEL_VARIABLES:
        return ("time", "pressure_level", "lat", "lon")
    raise KeyError(f"{variable!r} is not a contract variable")


def contract_problems(dataset, grid: Grid, init_time: datetime,  # noqa: ANN001
                      variables: tuple[str, ...] = ALL_VARIABLES) -> list[str]:
    """Every way a forecast dataset breaks the contract (empty when it conforms).

    Checked: each of ``variables`` (the ones the scores read; default every contract variable)
    present with its dims; the 40 valid times T0+6h..T0+240h;
    the 13 pressure levels; lon equal to the truth grid; lat the truth grid's or one of its known
    variants (``lat_layout``: 720 rows without the south pole, ascending), which scoring regrids.
    """
    problems: list[str] = []
    for variable in variables:
        if variable not in dataset.data_vars:
            problems.append(f"variable {variable} is missing")
        elif tuple(dataset[variable].dims) != variable_dims(variable):
            problems.append(f"variable {variable} has dims {tuple(dataset[variable].dims)}, "
                            f"expected {variable_dims(variable)}")
    if "time" in dataset.coords:
        expected = np.array([np.datetime64(t.replace(tzinfo=None), "ns") for t in valid_times(init_time)])
        got = dataset["time"].values.astype("datetime64[ns]")
        if got.shape != expected.shape or not (got == expected).all():
            problems.append(f"time holds {got.size} steps from {got[:1]} to {got[-1:]}, expected the 40 "
                            f"steps {expected[0]}..{expected[-1]}")
    else:
        problems.append("time coordinate is missing")
    if "pressure_level" in dataset.coords:
        levels = tuple(int(v) for v in dataset["pressure_level"].values)
        if levels != PRESSURE_LEVELS:
            problems.append(f"pressure levels are {levels}, expected {PRESSURE_LEVELS}")
    for name, want in (("lat", grid.lat), ("lon", grid.lon)):
        if name not in dataset.coords:
            problems.append(f"{name} coordinate is missing")
            continue
        got = np.asarray(dataset[name].values, dtype=float)
        if name == "lat" and lat_layout(got, grid) is not None:
            continue
        if got.shape != want.shape or not np.allclose(got, want, atol=1e-6):
            problems.append(f"{name} has {got.size} points ({got[:1]}..{got[-1:]}), expected {want.size} "
                            f"({want[0]}..{want[-1]}) on the {grid.resolution} degree grid")
    return problems


def lat_layouts(grid: Grid) -> dict[str, np.ndarray]:
    """The latitude axes a forecast may come on (GAIA_SPEC 3): the truth grid's (90 -> -90), the
    720-row one of Aurora-based miners (90 -> -89.75, the south pole left out), and either ascending."""
    lat = grid.lat
    return {"truth": lat, "720-row": lat[:-1], "ascending": lat[::-1], "720-row ascending": lat[:-1][::-1]}


def lat_layout(values: np.ndarray, grid: Grid) -> str | None:
    """Which of ``lat_layouts`` a latitude axis is (None when it is none of them)."""
    got = np.asarray(values, dtype=float)
    for name, want in lat_layouts(grid).items():
        if got.shape == want.shape and np.allclose(got, want, atol=1e-6):
            return name
    return None


def lat_row_counts(grid: Grid) -> tuple[int, ...]:
    """How many latitude rows a forecast on ``grid`` may have: the grid's (721 at 0.25 degree) or one less."""
    return (grid.lat.size, grid.lat.size - 1)


def time_index(lead_hours: int) -> int:
    """Index of a lead in the forecast's time axis (T0+6h is index 0)."""
    if lead_hours % STEP_HOURS or not STEP_HOURS <= lead_hours <= STEP_HOURS * N_STEPS:
        raise ValueError(f"lead {lead_hours} h is not a forecast step")
    return lead_hours // STEP_HOURS - 1
