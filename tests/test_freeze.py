"""Freeze and pin, and copies (issue 10), over real HTTP against reference miners on loopback,
driven through the validator's real stages on a SQLite validator DB.

- A miner that serves one signed store at verification and another (correctly signed too) at
  scoring fails with "store changed after freeze" naming the miner and the run, and gets no score;
  the honest miner of the same run is scored.
- A copier that re-signs another miner's store as its own is found by content: it and its original
  are refused alike, each naming the other, and the asset check lists the pair.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from gaia_dagster.core.contract import Grid
from gaia_dagster.core.manifest import PinnedManifest, data_digest
from gaia_dagster.db.repository import MinerRecord, ValidatorRepository
from gaia_dagster.resources.miner import hotkey_for_uri
from gaia_dagster.resources.sources import EmbeddedSources, WeatherSources
from gaia_dagster.resources.validator_db import ValidatorDB
from gaia_dagster.stages.forecast import ForecastRejected, verify_forecast
from gaia_dagster.stages.poll import poll_in_flight
from gaia_dagster.stages.copies import run_copy_pairs
from gaia_dagster.stages.request import request_forecast
from gaia_dagster.stages.scoring import score_day1_stage

from miner_server import TEST_VALIDATOR, running_miner, signed_client  # noqa: E402
from test_faults import POLL, QUERY, RESOLUTION, T0, wait_for_inference  # noqa: E402

HONEST_URI = "//freeze-test-honest"


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> WeatherSources:
    return EmbeddedSources(resolution=RESOLUTION, cache_dir=str(tmp_path_factory.mktemp("freeze-sources")))


@pytest.fixture
def repo(tmp_path) -> ValidatorRepository:
    repository = ValidatorRepository(f"sqlite:///{tmp_path / 'validator.db'}")
    repository.create_schema()
    return repository


@pytest.fixture
def stack():
    with ExitStack() as s:
        yield s


def serve(stack: ExitStack, data_dir: Path, uri: str, **settings) -> MinerRecord:
    url, _app = stack.enter_context(running_miner(data_dir, hotkey_uri=uri, resolution=RESOLUTION, **settings))
    return MinerRecord(hotkey_for_uri(uri), url, None, True, 0)


def verify_all(repo: ValidatorRepository, miners: list[MinerRecord], root: Path) -> dict[str, str]:
    """Request, poll and verify every miner, in the given order; returns each miner's outcome."""
    client = signed_client()
    for miner in miners:
        repo.upsert_miner(miner.hotkey, miner.base_url)
        assert request_forecast(repo, client, miner, T0, TEST_VALIDATOR, QUERY).outcome == "requested"
    wait_for_inference(client, repo)
    ready = {d.response.miner_hotkey: d.response for d in poll_in_flight(repo, client, POLL) if d.action == "ready"}
    outcome = {}
    for miner in miners:  # verification in the miners' order: the first freeze is the original
        try:
            verify_forecast(repo, client, ready[miner.hotkey], root / "verify", Grid(RESOLUTION))
            outcome[miner.hotkey] = "verified"
        except ForecastRejected as exc:
            outcome[miner.hotkey] = f"rejected:{exc}"
    return outcome


def row_of(repo: ValidatorRepository, miner: MinerRecord):  # noqa: ANN201 - a ResponseRecord
    return repo.response_for(repo.run_for_init_time(T0).id, miner.hotkey)


def test_a_store_swapped_after_verification_fails_with_store_changed(repo, stack, sources, tmp_path):
    honest = serve(stack, tmp_path / "honest", HONEST_URI)
    swapper = serve(stack, tmp_path / "swapper", "//freeze-test-swapper", fault="swap_after_freeze")
    assert verify_all(repo, [honest, swapper], tmp_path) == {honest.hotkey: "verified", swapper.hotkey: "verified"}
    frozen = repo.pinned_manifest(row_of(repo, swapper).id)
    assert frozen is not None and frozen.manifest_hash == row_of(repo, swapper).verification_hash_computed
    client = signed_client()
    with pytest.raises(ForecastRejected, match="store changed after freeze"):
        score_day1_stage(repo, client, sources, row_of(repo, swapper))
    row = row_of(repo, swapper)
    assert row.status == "failed", row
    assert "store changed after freeze" in row.error and swapper.hotkey in row.error and "T0=2026-10-20" in row.error
    assert repo.scores(row.id) == []
    with pytest.raises(Exception):  # failed for good: never scored on a retry
        score_day1_stage(repo, client, sources, row_of(repo, swapper))
    assert repo.scores(row.id) == []
    score_day1_stage(repo, client, sources, row_of(repo, honest))
    assert row_of(repo, honest).status == "day1_scored" and repo.scores(row_of(repo, honest).id)
    assert run_copy_pairs(repo, row.run_id) == []  # two honest stores with different data are no copies


def test_a_store_swapped_between_day1_and_era5_fails_era5_with_store_changed(repo, stack, sources, tmp_path):
    """The frozen manifest holds days later: honest at verification and day-1, swapped for ERA5."""
    from gaia_dagster.stages.scoring import score_era5_stage

    swapper = serve(stack, tmp_path / "swapper", "//freeze-test-late-swapper", fault="swap_after_freeze",
                    fault_count=2)
    assert verify_all(repo, [swapper], tmp_path) == {swapper.hotkey: "verified"}
    client = signed_client()
    assert score_day1_stage(repo, client, sources, row_of(repo, swapper)).score > 0
    with pytest.raises(ForecastRejected, match="store changed after freeze"):
        score_era5_stage(repo, client, sources, row_of(repo, swapper))
    row = row_of(repo, swapper)
    assert row.status == "failed" and swapper.hotkey in row.error and "store changed after freeze" in row.error
    assert repo.scores(row.id, "era5") == [] and repo.total_score(row.id, "era5") is None


def test_a_pinned_read_refuses_a_chunk_that_changed_under_the_same_manifest(repo, stack, tmp_path):
    """Every chunk read later is checked against the frozen digest, not only the manifest hash."""
    honest = serve(stack, tmp_path / "honest", HONEST_URI)
    verify_all(repo, [honest], tmp_path)
    row = row_of(repo, honest)
    pinned = repo.pinned_manifest(row.id)
    chunk = next(p for p in sorted(pinned.files) if p.startswith("2t/") and p.split("/")[-1].startswith("1."))
    forged = PinnedManifest(pinned.manifest_hash, {**pinned.files, chunk: "0" * 64})
    from gaia_dagster.core.manifest import StoreChanged

    with pytest.raises(StoreChanged, match="store changed after freeze"):
        signed_client().fetch_verified_store(row.miner_base_url, row.miner_hotkey, row.job_id, tmp_path / "m",
                                             time_indices=[1], pinned=forged)


def test_a_copier_and_its_original_are_refused_alike_naming_each_other(repo, stack, sources, tmp_path):
    """Byte-identical data under two signatures: found by content (tests/test_copies.py has every
    disguise); who copied whom cannot be decided, so both are refused, each naming the other."""
    original = serve(stack, tmp_path / "original", HONEST_URI)
    copier = serve(stack, tmp_path / "copier", "//freeze-test-copier", fault="copier",
                   fault_copy_of=original.hotkey)
    outcome = verify_all(repo, [original, copier], tmp_path)
    assert outcome[original.hotkey] == "verified"
    assert outcome[copier.hotkey].startswith("rejected:") and f"miner {original.hotkey} at distance" in outcome[copier.hotkey]
    row = row_of(repo, copier)
    assert row.status == "failed" and copier.hotkey in row.error and "cannot be decided" in row.error
    a, b = repo.pinned_manifest(row_of(repo, original).id), repo.pinned_manifest(row.id)
    assert a.manifest_hash != b.manifest_hash and data_digest(a.files) == data_digest(b.files)
    with pytest.raises(ForecastRejected, match=f"miner {copier.hotkey} at distance 0 "):
        score_day1_stage(repo, signed_client(), sources, row_of(repo, original))
    assert row_of(repo, original).status == "failed" and repo.scores(row_of(repo, original).id) == []

    from gaia_dagster.checks.copies import no_copied_forecasts

    result = no_copied_forecasts(validator_db=ValidatorDB(url=repo.url))
    assert result.passed and result.metadata["copy_pairs"].value == 1
    assert f"{min(original.hotkey, copier.hotkey)} ~ {max(original.hotkey, copier.hotkey)}" in result.description


def test_data_digest_ignores_metadata_and_signatures():
    files = {"2t/0.0.0": "a" * 64, "2t/.zarray": "b" * 64, ".zattrs": "c" * 64, "manifest.sig": "d" * 64}
    assert data_digest(files) == data_digest({"2t/0.0.0": "a" * 64, ".zattrs": "e" * 64})
    assert data_digest(files) != data_digest({"2t/0.0.1": "a" * 64})
