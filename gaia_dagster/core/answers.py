"""Limits on what a miner says: its JSON answers and the texts of it the validator stores.

A miner is untrusted, so its answer is refused before it can hurt the parser (GAIA_SPEC 2; issue 10):
it must be UTF-8, nested at most ``MAX_ANSWER_DEPTH`` deep (Python's JSON parser recurses once per
level, so a 200 KB ``[[[[...`` would raise RecursionError) and a JSON object. Size is bounded where
the bytes are read (``resources/miner_client.py``). Any text a miner chose that ends up in the
validator DB goes through ``stored_text``: bounded in length, and storable (no NUL, valid UTF-8).
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

MAX_ANSWER_DEPTH = 32
"""Deepest nesting of arrays/objects accepted in a miner's JSON answer (Gaia's answers nest 1-2 deep)."""

MAX_STORED_TEXT = 1000
"""Longest miner-provided text (error, message) stored in the validator DB, in characters."""

_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_OPENERS = np.zeros(256, dtype=np.int8)
_OPENERS[[ord("["), ord("{")]] = 1
_OPENERS[[ord("]"), ord("}")]] = -1


class AnswerRejected(ValueError):
    """A miner's answer broke a limit or is not a JSON object; the message says which."""


def json_depth(body: bytes) -> int:
    """The deepest array/object nesting of a JSON text, counted without parsing it (strings are
    blanked first so brackets inside them do not count)."""
    skeleton = _JSON_STRING.sub(b'""', body)
    if not skeleton:
        return 0
    steps = _OPENERS[np.frombuffer(skeleton, dtype=np.uint8)]
    return int(np.cumsum(steps, dtype=np.int64).max(initial=0))


def parse_json_object(body: bytes, max_depth: int = MAX_ANSWER_DEPTH) -> dict[str, Any]:
    """Answer rule: UTF-8, nested at most ``max_depth`` deep, valid JSON, an object; else
    ``AnswerRejected`` naming what was wrong."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AnswerRejected(f"answer is not UTF-8 ({exc.reason} at byte {exc.start}): {body[:80]!r}") from None
    depth = json_depth(body)
    if depth > max_depth:
        raise AnswerRejected(f"answer nested deeper than {max_depth} (depth {depth}, {len(body)} bytes)")
    try:
        answer = json.loads(text)
    except ValueError as exc:
        raise AnswerRejected(f"malformed JSON ({exc}): {body[:200]!r}") from None
    if not isinstance(answer, dict):
        raise AnswerRejected(f"wrong schema, the answer is not a JSON object: {body[:200]!r}")
    return answer


def stored_text(text: str | None, limit: int = MAX_STORED_TEXT) -> str | None:
    """Storage rule for a miner-provided text: NUL removed (PostgreSQL text cannot hold it), lone
    surrogates replaced (not UTF-8), and cut to ``limit`` characters with a note of how much was cut."""
    if text is None:
        return None
    text = str(text).replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    if len(text) <= limit:
        return text
    keep = max(0, limit - 40)  # room for the note
    return text[:keep] + f" ... [{len(text) - keep} more characters cut]"[: limit - keep]
