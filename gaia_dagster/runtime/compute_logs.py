"""A run's captured stdout and stderr go to its compute log files, and only there.

Dagster's local compute log manager captures each stream of a run into a file the UI shows, and
mirrors the file back to the process's own stream: for each of the two streams of every run it
starts ``tail -F`` and a Python interpreter that watches for the tail being orphaned
(``dagster._core.execution.compute_logs.execute_posix_tail``). That is two interpreters and two
tails a run, ~0.04 CPU-s on a 2-CPU machine, for a copy that lands in the run workers' own log
(``$DAGSTER_HOME/logs/run_workers.log``), not anywhere the UI reads.

``keep_compute_logs_in_files`` makes the capture a plain redirection of each stream into its file
(what the mirror does besides the copy): the UI's stdout and stderr of every run are the same, no
process is started. Output a run worker writes outside a capture (a crash before or after its
steps) still goes to ``run_workers.log``. Should Dagster rename what is replaced here, the capture
falls back to Dagster's own mirror, unchanged (``tests/test_compute_logs.py`` notices).
"""

from __future__ import annotations

import importlib
from contextlib import contextmanager
from typing import IO, Iterator

LOCAL_MANAGER = "dagster._core.storage.local_compute_log_manager"
MIRROR = "mirror_stream_to_file"


@contextmanager
def redirect_stream_to_file(stream: IO, filepath: str) -> Iterator[None]:
    """Rule: a captured stream is redirected into its compute log file (made if missing) for the
    block, and not copied back to the stream."""
    from dagster._core.execution.compute_logs import redirect_to_file
    from dagster._utils import ensure_file

    ensure_file(filepath)
    with redirect_to_file(stream, filepath):
        yield None


def keep_compute_logs_in_files() -> None:
    """Make the local compute log manager of this process capture without the mirror (idempotent;
    nothing happens if Dagster no longer has what is replaced)."""
    try:
        module = importlib.import_module(LOCAL_MANAGER)
    except ImportError:
        return
    if hasattr(module, MIRROR):
        setattr(module, MIRROR, redirect_stream_to_file)
