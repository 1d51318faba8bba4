"""The day at a glance, for operators: each miner's stage and outcome, and the day's totals.

Rules:
- A job's *stage* is where its status puts it: requested (created), inference (fetch_initiated,
  inference_running), verified (forecast_ready, day1_scoring), day-1 scored (day1_scored), ERA5
  (era5_scoring, era5_partial), scored (era5_scored), failed.
- A failed job's *cause* is the stage it failed in, told by the status its accepted transition to
  ``failed`` left: request (created), inference (in flight, failed by polling: no run behind it),
  verification (in flight, failed by the verifying run), day-1 or ERA5.
- Numbers are shown to 4 significant digits; hotkeys as their first 6 and last 4 characters; a
  reason on one line, without the miner and run its row already names, no word in it longer than
  24 characters (a word cannot wrap: the table must fit 1600 px).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable

from gaia_dagster.core.states import ResponseStatus

S = ResponseStatus
FAILED_STAGE = S.FAILED.value
STAGE_OF: dict[str, str] = {
    S.CREATED.value: "requested", S.FETCH_INITIATED.value: "inference", S.INFERENCE_RUNNING.value: "inference",
    S.FORECAST_READY.value: "verified", S.DAY1_SCORING.value: "verified", S.DAY1_SCORED.value: "day-1 scored",
    S.ERA5_SCORING.value: "ERA5", S.ERA5_PARTIAL.value: "ERA5", S.ERA5_SCORED.value: "scored",
    S.FAILED.value: FAILED_STAGE,
}
CAUSE_OF: dict[str, str] = {
    S.CREATED.value: "request", S.FETCH_INITIATED.value: "inference", S.INFERENCE_RUNNING.value: "inference",
    S.FORECAST_READY.value: "day-1", S.DAY1_SCORING.value: "day-1", S.DAY1_SCORED.value: "ERA5",
    S.ERA5_SCORING.value: "ERA5", S.ERA5_PARTIAL.value: "ERA5",
}
REASON_CHARS = 120
WORD_CHARS = 24     # a longer word cannot wrap and would widen the reason column past 1600 px
WHO_PREFIX = re.compile(r"^miner \S+?(, (run|job) [^,:]+)*: ")
SS58_HOTKEY = re.compile(r"^5[1-9A-HJ-NP-Za-km-z]{45,47}$")


@dataclass(frozen=True)
class DayJob:
    """What the view needs of one job: its miner, status and error, the status it failed from (if
    it failed), its scores, the ERA5 leads scored so far of ``leads_total``, and its weight."""

    uid: int | None
    hotkey: str
    status: str
    error: str | None
    failed_from: str | None
    failed_in_run: bool
    day1: float | None
    era5: float | None
    leads_scored: int
    leads_total: int
    weight: float | None


def sig4(value: float | None) -> float | None:
    """``value`` rounded to 4 significant digits (None and non-finite values stay None)."""
    if value is None or not math.isfinite(value):
        return None
    if value == 0:
        return 0.0
    return round(value, 3 - int(math.floor(math.log10(abs(value)))))


def short_hotkey(hotkey: str) -> str:
    """``5Grwva…utQY``: enough to tell miners apart at a glance."""
    return hotkey if len(hotkey) <= 12 else f"{hotkey[:6]}…{hotkey[-4:]}"


def cause(job: DayJob) -> str | None:
    """The stage a failed job failed in (None when it has not failed)."""
    if job.status != S.FAILED.value:
        return None
    if job.failed_from == S.INFERENCE_RUNNING.value and job.failed_in_run:
        return "verification"
    return CAUSE_OF.get(job.failed_from or "", "unknown")


def one_line(text: str | None, limit: int = REASON_CHARS) -> str:
    """A reason on one line, without the "miner X, run T0, job J: " its row already says, each
    word short enough to wrap (``short_word``), cut to ``limit`` characters."""
    line = " ".join(map(short_word, WHO_PREFIX.sub("", " ".join((text or "").split()), count=1).split()))
    return line if len(line) <= limit else line[: limit - 1] + "…"


def short_word(word: str) -> str:
    """A hotkey as ``short_hotkey``; any other word longer than ``WORD_CHARS`` cut to it (the full
    reason is in the job's run and the validator DB)."""
    bare = word.rstrip(",.;:")
    if SS58_HOTKEY.match(bare):
        return short_hotkey(bare) + word[len(bare):]
    return word if len(word) <= WORD_CHARS else word[: WORD_CHARS - 1] + "…"


def view_row(job: DayJob) -> dict:
    """One miner's row of the day view."""
    failed = job.status == S.FAILED.value
    return {"uid": job.uid, "miner": short_hotkey(job.hotkey), "stage": STAGE_OF.get(job.status, job.status),
            "cause": cause(job), "reason": one_line(job.error) if failed else "",
            "day1": sig4(job.day1), "era5": sig4(job.era5), "era5_leads": f"{job.leads_scored}/{job.leads_total}",
            "weight": sig4(job.weight)}


def day_totals(jobs: Iterable[DayJob], asked: int) -> dict[str, int]:
    """The day's counts: miners asked, jobs answered (past the request), verified, day-1 scored,
    ERA5 scored, failed, and failed by cause (``failed_<cause>``)."""
    jobs = list(jobs)
    reached = lambda stage_statuses: sum(1 for j in jobs if j.status in stage_statuses)  # noqa: E731
    past_request = {s.value for s in S} - {S.CREATED.value, S.FAILED.value}
    verified = past_request - {S.FETCH_INITIATED.value, S.INFERENCE_RUNNING.value}
    day1 = verified - {S.FORECAST_READY.value, S.DAY1_SCORING.value}
    failed = Counter(cause(j) for j in jobs if j.status == S.FAILED.value)
    answered = reached(past_request) + sum(n for c, n in failed.items() if c != "request")
    return {"asked": asked, "answered": answered,
            "verified": reached(verified) + sum(failed[c] for c in ("day-1", "ERA5")),
            "day1_scored": reached(day1) + failed["ERA5"], "era5_scored": reached({S.ERA5_SCORED.value}),
            "failed": sum(failed.values()), **{f"failed_{c}": n for c, n in sorted(failed.items())}}
