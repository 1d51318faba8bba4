"""Faults of the validator's own machine: its disk and its data cache (issue 18).

A forecast store is mirrored and read on the validator's disk. When that disk is full, read-only,
over a file-size limit or unreadable, the store is not to blame: the error is a
``ValidatorSideError``, which fails no miner and leaves the job to be retried.
"""

from __future__ import annotations

import errno

LOCAL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM,
                          errno.EIO, errno.EMFILE, errno.ENFILE})
"""OS errors that say the validator's own disk failed (full, quota, file-size limit, read-only,
unreadable or unwritable, I/O error, out of file handles), whatever the file held."""


class ValidatorSideError(Exception):
    """The validator's own side failed (its disk, its data cache): no miner is blamed for it."""


def local_cause(exc: BaseException) -> OSError | None:
    """The local filesystem error behind ``exc`` (itself, or anywhere along its cause chain), if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in LOCAL_ERRNOS:
            return current
        current = current.__cause__ or current.__context__
    return None


def as_validator_side(exc: BaseException, action: str) -> ValidatorSideError | None:
    """A ``ValidatorSideError`` naming what the validator was doing and the OS's reason when ``exc``
    comes from its own disk; None when it does not."""
    cause = local_cause(exc)
    if cause is None:
        return None
    where = f" {cause.filename}" if cause.filename else ""
    return ValidatorSideError(f"the validator's own disk failed while it {action}{where}: "
                              f"{cause.strerror or cause} (errno {errno.errorcode.get(cause.errno, cause.errno)})")
