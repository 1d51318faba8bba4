"""The two scoring profiles: ``deployed`` (what Gaia v2.9.96 computes, for consensus with the other
validators; the default) and ``sound`` (the choices GAIA_SPEC calls sound).

Where they differ (one flag each; README has the same table):

| rule                        | deployed                                          | sound                              |
|-----------------------------|---------------------------------------------------|------------------------------------|
| day-1 range checks          | none (the deployed step passes no bounds)         | 2t, msl, t850, z500 ranges         |
| day-1 NaN in a variable     | skipped in every mean                             | the variable fails sanity          |
| day-1 clone clamp counts    | only variables that passed sanity                 | every variable                     |
| ERA5 level combination      | per variable first: RMSE = sqrt(sum w_l MSE_l),   | per field terms, then level-       |
|                             | ACC and skill sum w_l x_l (NaN skill = 0), clamp  | weighted means of clamped terms    |
|                             | after                                             |                                    |
| ERA5 RMSE term reference    | median (sorted[n // 2]) of the miner's own        | the field's climatology RMSE       |
|                             | per-variable RMSEs at that lead                   |                                    |
| ERA5 NaN ACC                | surface or single-level entry: no ERA5 score;     | counts ACC = -1 (term 0): a NaN    |
|                             | one level of an all-levels variable: the variable | never raises a score               |
|                             | keeps its RMSE at that lead, loses ACC and skill  |                                    |
| ERA5 missing variable       | fails ERA5 scoring                                | its terms are left out             |
| NaNs and regridding         | spread by the linear regrid (also on the same     | regrid only off-grid; outside      |
|                             | grid), NaN outside the forecast's latitudes       | points take the edge row           |
| edge salvage                | border NaNs take their inward neighbour after the | none: border NaNs count against    |
|                             | regrid, before the coverage guard (Gaia's order)  | coverage, then climatology fill    |
| day-1 NaN values            | skipped in every mean; no coverage guard (an      | coverage guard; a variable with    |
|                             | all-NaN variable fails its correlation check)     | NaNs counts 0 in both means        |
| surface-variable bias row   | unweighted mean (also a single-level entry)       | latitude-weighted mean             |

Both: the variable list (``core.scoring.variables``), the 1e12 magnitude guard (Gaia's never fires:
it indexes a DataArray with a 2-D mask and swallows the error; we keep ours), the 0.1 / 0.9985 ERA5
coverage guards on the truth grid, climatology fill, a lead without fields counts 0 (as in Gaia).
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PROFILE = "deployed"


@dataclass(frozen=True)
class ScoringProfile:
    """One named set of scoring choices (see the module table)."""

    name: str
    day1_range_checks: bool
    day1_skip_nans: bool
    clone_clamp_sane_only: bool
    era5_collapse_levels: bool
    era5_median_rmse_reference: bool
    era5_nan_acc_fails: bool
    era5_missing_variable_fails: bool
    spread_nans: bool
    regrid_outside: str
    surface_bias_unweighted: bool
    edge_salvage: bool
    day1_coverage_guard: bool
    nan_counts_worst: bool


DEPLOYED = ScoringProfile("deployed", day1_range_checks=False, day1_skip_nans=True, clone_clamp_sane_only=True,
                          era5_collapse_levels=True, era5_median_rmse_reference=True, era5_nan_acc_fails=True,
                          era5_missing_variable_fails=True, spread_nans=True, regrid_outside="nan",
                          surface_bias_unweighted=True, edge_salvage=True, day1_coverage_guard=False,
                          nan_counts_worst=False)
SOUND = ScoringProfile("sound", day1_range_checks=True, day1_skip_nans=False, clone_clamp_sane_only=False,
                       era5_collapse_levels=False, era5_median_rmse_reference=False, era5_nan_acc_fails=False,
                       era5_missing_variable_fails=False, spread_nans=False, regrid_outside="edge",
                       surface_bias_unweighted=False, edge_salvage=False, day1_coverage_guard=True,
                       nan_counts_worst=True)
PROFILES: dict[str, ScoringProfile] = {p.name: p for p in (DEPLOYED, SOUND)}


def scoring_profile(name: str | ScoringProfile | None) -> ScoringProfile:
    """The profile of that name (None: the default, ``deployed``); a clear error for any other name."""
    if isinstance(name, ScoringProfile):
        return name
    key = (name or DEFAULT_PROFILE).strip().lower()
    if key not in PROFILES:
        raise ValueError(f"unknown scoring profile {name!r} (expected one of {sorted(PROFILES)})")
    return PROFILES[key]
