"""Run one validator stage in this process with the validator's own side really faulted (issue 18).

Used by tests/test_validator_faults.py as a subprocess, so that the fault is the kernel's and no
other process sees it:

- ``full``: the stage's disk (``root``) is a 64 KiB tmpfs filled to 100 % in a private mount
  namespace (``unshare -m``, when allowed), else every file this process writes is capped at 1 KiB
  by ``RLIMIT_FSIZE``: the kernel answers ENOSPC or EFBIG;
- ``unreadable``: the caller made ``root`` mode 000 and started this process without the
  capabilities that let root ignore file modes (``setpriv``): the kernel answers EACCES.

Prints one JSON line: the exception type the stage raised (or ``none``) and its message.
"""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from gaia_dagster.core.contract import Grid  # noqa: E402
from gaia_dagster.core.retry import StageRetry  # noqa: E402
from gaia_dagster.db.repository import ValidatorRepository  # noqa: E402
from gaia_dagster.resources.sources import EmbeddedSources  # noqa: E402
from gaia_dagster.stages.forecast import verify_forecast  # noqa: E402
from gaia_dagster.stages.scoring import score_day1_stage  # noqa: E402
from miner_server import signed_client  # noqa: E402


def fill_disk(root: Path) -> str:
    """Make ``root`` a full filesystem (a tmpfs at 100 %), else cap this process's file size."""
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(root)],
                             capture_output=True).returncode == 0
    if not mounted:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, resource.RLIM_INFINITY))
        return "rlimit"
    try:
        with open(root / "filler", "wb") as filler:
            while True:
                filler.write(b"\0" * 4096)
                filler.flush()
    except OSError:
        return "tmpfs"


def main() -> None:
    args = json.loads(sys.argv[1])
    root = Path(args["root"])
    how = fill_disk(root) if args["fault"] == "full" else "setpriv"
    repo = ValidatorRepository(args["db_url"])
    row = repo.response_by_id(args["response_id"])
    sources = EmbeddedSources(resolution=args["resolution"], cache_dir=str(root / "cache"))
    client = signed_client(read_timeout=2.0, total_timeout=10.0)
    try:
        if args["stage"] == "verify":
            verify_forecast(repo, client, row, root / "verify", Grid(args["resolution"]))
        else:
            score_day1_stage(repo, client, sources, row, retry=StageRetry("day1", 3, (0.0,)))
        print(json.dumps({"raised": "none", "message": "", "how": how}))
    except Exception as exc:  # noqa: BLE001 - reported to the test
        print(json.dumps({"raised": type(exc).__name__, "message": str(exc), "how": how}))


if __name__ == "__main__":
    main()
