"""Copies by content (issue 18), over real HTTP against reference miners on loopback, through the
validator's real stages on SQLite validator DBs.

One original (a good miner), a copier of it in each disguise the miner knows (identical, 1e-6
relative noise, recompressed, rechunked, reordered with latitudes flipped), and five honest miners
(two more good ones, persistence, climatology, the GFS clone). The same forecasts are verified and
day-1 scored twice, in two opposite orders, each by a validator with a DB of its own: the copy
pairs and every miner's final verdict are the same both times; every copier is paired with the
original, no honest miner with anyone; the original and its copiers all end refused, each naming
the other miner, the distance and the threshold; the honest ones are scored; the asset check lists
the pairs with their evidence.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gaia_dagster.core.contract import Grid
from gaia_dagster.core.copies import COPY_THRESHOLD, copy_pairs, pair_distances, pairs_with
from gaia_dagster.db.repository import MinerRecord, ValidatorRepository
from gaia_dagster.miner.faults import COPIER_FAULTS
from gaia_dagster.resources.validator_db import ValidatorDB
from gaia_dagster.stages.attempts import ForecastRejected
from gaia_dagster.stages.copies import run_copy_pairs
from gaia_dagster.stages.forecast import verify_forecast
from gaia_dagster.stages.poll import poll_in_flight
from gaia_dagster.stages.request import request_forecast
from gaia_dagster.stages.scoring import score_day1_stage

from miner_server import TEST_VALIDATOR, signed_client  # noqa: E402
from test_faults import POLL, QUERY, RESOLUTION, T0, wait_for_inference  # noqa: E402
from test_freeze import row_of, serve, sources  # noqa: E402,F401 - sources is a fixture

HONEST = {"good-b": "good", "good-c": "good", "persistence": "persistence", "climatology": "climatology",
          "clone": "clone"}


def validate(repo: ValidatorRepository, miners: list[MinerRecord], root: Path, sources) -> dict[str, str]:  # noqa: ANN001
    """Request, poll, verify and score day-1 for every miner in the given order; each one's outcome."""
    client = signed_client()
    for miner in miners:
        repo.upsert_miner(miner.hotkey, miner.base_url)
        request_forecast(repo, client, miner, T0, TEST_VALIDATOR, QUERY)
    wait_for_inference(client, repo)
    ready = {d.response.miner_hotkey: d.response for d in poll_in_flight(repo, client, POLL) if d.action == "ready"}
    outcome = {}
    for miner in miners:
        try:
            verify_forecast(repo, client, ready[miner.hotkey], root / "verify", Grid(RESOLUTION))
            outcome[miner.hotkey] = "verified"
        except ForecastRejected as exc:
            outcome[miner.hotkey] = f"rejected at verification:{exc}"
    for miner in miners:
        if outcome[miner.hotkey] == "verified":
            try:
                score_day1_stage(repo, client, sources, row_of(repo, miner))
                outcome[miner.hotkey] = "scored"
            except ForecastRejected as exc:
                outcome[miner.hotkey] = f"rejected at day-1:{exc}"
    return outcome


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """The original, its copiers and the honest miners, serving for the whole module."""
    from contextlib import ExitStack

    root = tmp_path_factory.mktemp("copies")
    with ExitStack() as stack:
        original = serve(stack, root / "original", "//copies-original")
        copiers = {fault: serve(stack, root / fault, f"//copies-{fault}", fault=fault, fault_copy_of=original.hotkey)
                   for fault in sorted(COPIER_FAULTS)}
        honest = {name: serve(stack, root / name, f"//copies-{name}", profile=profile) for name, profile in HONEST.items()}
        yield original, copiers, honest


@pytest.fixture(scope="module")
def two_orders(fleet, sources, tmp_path_factory):  # noqa: F811
    """The same forecasts validated in two opposite orders, each by a validator of its own."""
    original, copiers, honest = fleet
    miners = [original, *copiers.values(), *honest.values()]
    results = []
    for name, order in (("forward", miners), ("backward", miners[::-1])):
        root = tmp_path_factory.mktemp(name)
        repo = ValidatorRepository(f"sqlite:///{root / 'validator.db'}")
        repo.create_schema()
        results.append((repo, validate(repo, order, root, sources)))
    return results


def _pairs(repo: ValidatorRepository) -> set[frozenset[str]]:
    return {frozenset((p.a, p.b)) for p in run_copy_pairs(repo, repo.run_for_init_time(T0).id)}


def test_every_copier_variant_is_paired_with_the_original_and_no_honest_miner_is(fleet, two_orders):
    original, copiers, honest = fleet
    for repo, _ in two_orders:
        pairs = _pairs(repo)
        for fault, copier in copiers.items():
            assert frozenset((original.hotkey, copier.hotkey)) in pairs, fault
        flagged = set().union(*pairs)
        assert not flagged & {m.hotkey for m in honest.values()}, flagged
    assert _pairs(two_orders[0][0]) == _pairs(two_orders[1][0])  # the order of arrival changes nothing


def test_the_verdict_is_the_same_in_either_order_and_says_who_copied_cannot_be_decided(fleet, two_orders):
    original, copiers, honest = fleet
    (repo_a, forward), (repo_b, backward) = two_orders
    for miner in [original, *copiers.values()]:
        for repo, outcome in two_orders:
            assert outcome[miner.hotkey].startswith("rejected"), outcome[miner.hotkey]
            row = row_of(repo, miner)
            assert row.status == "failed" and miner.hotkey in row.error and "T0=2026-10-20" in row.error
            assert "cannot be decided" in row.error and f"threshold {COPY_THRESHOLD:g}" in row.error
            assert repo.scores(row.id, "day1") == []
    for miner in copiers.values():
        assert f"miner {original.hotkey} at distance" in row_of(repo_a, miner).error
    assert all(forward[m.hotkey] == backward[m.hotkey] == "scored" for m in honest.values()), (forward, backward)
    # the original is refused at verification when it comes last, at day-1 when it comes first: alike
    assert forward[original.hotkey].startswith("rejected at day-1")
    assert backward[original.hotkey].startswith("rejected at verification")


def test_the_asset_check_shows_each_pair_with_its_evidence(fleet, two_orders):
    from gaia_dagster.checks.copies import no_copied_forecasts

    original, copiers, _ = fleet
    repo, _ = two_orders[0]
    result = no_copied_forecasts(validator_db=ValidatorDB(url=repo.url))
    assert result.passed, result.description
    pairs = result.metadata["pairs"].value
    n = len(copiers) + 1
    assert result.metadata["copy_pairs"].value == len(pairs) == n * (n - 1) // 2  # every two of them
    for fault, copier in copiers.items():
        pair = next(p for p in pairs if {p["miner_a"], p["miner_b"]} == {original.hotkey, copier.hotkey})
        print(f"{fault}: distance {pair['distance']:.2e} (threshold {pair['threshold']:g}, "
              f"honest spread {pair['honest_spread']:.3f})")
    noisy = next(p for p in pairs if {p["miner_a"], p["miner_b"]} == {original.hotkey, copiers["copier_noise"].hotkey})
    assert 0 < noisy["distance"] < noisy["threshold"] == COPY_THRESHOLD and noisy["honest_spread"] > 10 * COPY_THRESHOLD
    assert noisy["verdict_a"] == noisy["verdict_b"] == "refused" and "undecidable" in noisy["who_copied"]


# -- the rule, directly ------------------------------------------------------------------------
def test_distance_is_exact_for_tiny_differences_and_symmetric():
    rng = np.random.default_rng(1)
    base = (rng.standard_normal((8, 1024)) * 20 + 280).astype(np.float32)
    others = {f"h{i}": (base + rng.standard_normal(base.shape) * 2).astype(np.float32) for i in range(6)}
    noisy = (base * (1 + 1e-6 * rng.standard_normal(base.shape))).astype(np.float32)
    prints = {"orig": base, "noisy": noisy, **others}
    pairs = copy_pairs(prints)
    assert [(p.a, p.b) for p in pairs] == [("noisy", "orig")]
    assert pairs == copy_pairs(dict(reversed(list(prints.items()))))
    assert pairs_with("orig", prints) == pairs_with("noisy", prints) == pairs and pairs_with("h0", prints) == []
    distance, _ = pair_distances(np.stack([base, noisy]))
    direct = np.sqrt(np.mean(((base.astype(float) - noisy) / np.std(base, axis=1, keepdims=True)) ** 2))
    assert distance[0, 1] == pytest.approx(direct, rel=1e-3) and distance[0, 1] == distance[1, 0]


def test_nan_fields_are_left_out_and_all_nan_forecasts_are_no_copies():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((4, 256)).astype(np.float32)
    b = a.copy()
    b[0] = np.nan  # one field lost: the other three still match
    nan = np.full_like(a, np.nan)
    pairs = copy_pairs({"a": a, "b": b, "n1": nan, "n2": nan.copy()})
    assert [(p.a, p.b, p.fields_compared) for p in pairs] == [("a", "b", 3)]


def test_the_check_looks_at_the_runs_still_scored_up_to_the_newest(tmp_path):
    """Runs whose T0 is more than 16 days before the newest fingerprinted run's are not compared."""
    from datetime import timedelta

    from gaia_dagster.checks.copies import CHECKED_DAYS
    from gaia_dagster.db.copies import fingerprinted_runs, record_fingerprint
    from gaia_dagster.stages.request import open_job

    repo = ValidatorRepository(f"sqlite:///{tmp_path / 'v.db'}")
    repo.create_schema()
    samples = np.ones((2, 4), dtype=np.float32)
    runs = []
    for days in (0, 10, 40):
        for hotkey in ("5Fa", "5Fb"):
            row, _ = open_job(repo, MinerRecord(hotkey, f"http://{hotkey}.example", None, True, 0),
                              T0 + timedelta(days=days), "validator")
            record_fingerprint(repo, row.id, row.run_id, hotkey, "s" * 64, samples)
        runs.append(row.run_id)
    assert fingerprinted_runs(repo) == runs
    assert fingerprinted_runs(repo, window=CHECKED_DAYS) == runs[2:]
