"""``gaia-dagster leaderboard --date YYYY-MM-DD [--url URL] [--json]``: the 15-day leaderboard with
rank intervals (``stages.ranks``), read from this validator's DB as ``miner_scores`` shows it."""

from __future__ import annotations

import argparse
import json
import math
from datetime import datetime, timezone


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gaia-dagster leaderboard",
                                     description="The 15-day leaderboard with 90% rank intervals and the paired "
                                                 "test between neighbours (informs; sets no weight).")
    parser.add_argument("--date", required=True, help="the run's day (YYYY-MM-DD, its GFS T0 at 00 UTC)")
    parser.add_argument("--url", default="", help="validator DB URL (default: GAIA_DB_URL or the instance's SQLite)")
    parser.add_argument("--json", action="store_true", help="one JSON object: {date, miners: [...]}")
    return parser


def _cell(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.3g}"


def main(argv: list[str] | None = None) -> int:
    from gaia_dagster.db.repository import ValidatorRepository, default_db_url
    from gaia_dagster.resources.settings import dagster_home
    from gaia_dagster.stages.ranks import window_ranks

    args = build_parser().parse_args(argv)
    repo = ValidatorRepository(args.url or default_db_url(dagster_home()))
    repo.create_schema()
    t0 = datetime.strptime(args.date, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    run = repo.run_for_init_time(t0)
    if run is None:
        print(f"no run for {args.date} in the validator DB", flush=True)
        return 1
    uids = {m.hotkey: m.uid for m in repo.miners()}
    ranked = [{**m.as_row(), "uid": uids.get(m.hotkey)} for m in window_ranks(repo, run)]
    if args.json:
        print(json.dumps({"date": args.date, "miners": ranked}))
        return 0
    print(f"15-day leaderboard of {args.date}: rank [90% interval], mean overall score, p-value against the next")
    for m in ranked:
        mark = "" if m["next_significant"] is None else (" (significant)" if m["next_significant"] else "")
        interval = "[too few days]" if m["rank_low"] is None else f"[{m['rank_low']}-{m['rank_high']}]"
        uid = m["uid"] if m["uid"] is not None else "-"
        print(f"  {m['rank']:>3} {interval}  uid {uid:>4}  {m['hotkey']}  {m['mean_score']:.4f}"
              f"  p {_cell(m['next_p_value'])}{mark}")
    return 0
