"""The validator side of tests/test_hostile_stores.py, run in a process of its own so that its peak
RSS (VmHWM) measures the validator alone: request, poll and verify every miner given on the command
line through the real stages, then score day-1 for each verified one (``--day1``).

Prints one JSON line: each miner's outcome, and VmHWM in MiB before the first request and at the end.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def vm_hwm_mib() -> float:
    """The process's peak resident set so far (Linux ``/proc/self/status`` VmHWM), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main(workdir: str, miners_json: str, day1: str) -> None:
    from gaia_dagster.db.repository import MinerRecord, ValidatorRepository
    from gaia_dagster.resources.sources import EmbeddedSources
    from gaia_dagster.stages.forecast import ForecastRejected
    from gaia_dagster.stages.scoring import score_day1_stage

    from miner_server import signed_client
    from test_faults import RESOLUTION
    from test_freeze import row_of, verify_all

    root = Path(workdir)
    repo = ValidatorRepository(f"sqlite:///{root / 'validator.db'}")
    repo.create_schema()
    sources = EmbeddedSources(resolution=RESOLUTION, cache_dir=str(root / "sources"))
    miners = [MinerRecord(hotkey, url, None, True, 0) for hotkey, url in json.loads(miners_json)]
    before = vm_hwm_mib()
    outcome = verify_all(repo, miners, root)
    scored = {}
    for miner in miners:
        if outcome[miner.hotkey] != "verified" or miner.hotkey not in day1.split(","):
            continue
        try:
            scored[miner.hotkey] = f"scored:{score_day1_stage(repo, signed_client(), sources, row_of(repo, miner)).score}"
        except ForecastRejected as exc:
            scored[miner.hotkey] = f"rejected:{exc}"
    print(json.dumps({"verify": outcome, "day1": scored, "hwm_before_mib": before, "hwm_after_mib": vm_hwm_mib()}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
