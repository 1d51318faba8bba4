"""Gaia's scores as small pure functions over numpy arrays (GAIA_SPEC sections 4-6).

``metrics``: latitude/level weights and weighted MSE, RMSE, bias, ACC, bias-corrected skill;
``day1``: the day-1 score (clone penalty, sanity, skill vs GFS, ACC);
``era5``: the ERA5 score (guards, per-field rows, per-lead scores, streaming form);
``aggregate``: the overall score and the miners' weights;
``variables``: the variable list a score covers (``GAIA_ERA5_VARIABLES``, ``score --variables``).
"""

from gaia_dagster.core.scoring.aggregate import miner_weights, overall_score, with_top_bonus
from gaia_dagster.core.scoring.day1 import Day1Component, Day1Field, Day1Result, score_day1
from gaia_dagster.core.scoring.era5 import Era5Field, Era5Metric, Era5Result, score_era5

__all__ = ["Day1Component", "Day1Field", "Day1Result", "Era5Field", "Era5Metric", "Era5Result", "miner_weights",
           "overall_score", "score_day1", "score_era5", "with_top_bonus"]
