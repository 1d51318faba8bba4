"""URLs a miner gives (issue 18): http or https only, on the miner's own endpoint.

Real reference miners on loopback announce their store under a ``javascript:``, ``file:`` or
``data:`` URL (their public base URL set to one). The validator's real stages refuse it with an
error naming the miner and the run: at verification (the kerchunk answer) and, for a second
validator that gets the fast path, at the request itself, so it is never stored. The metadata the
assets emit shows a miner's URL as a link only when it passes; a registry file entry whose url is
not a web URL is refused naming the file and the miner.
"""

from __future__ import annotations

from contextlib import ExitStack

import pytest
from dagster import MetadataValue

from gaia_dagster.assets.links import miner_link
from gaia_dagster.core.urls import store_url_problem, url_problem
from gaia_dagster.db.repository import ValidatorRepository
from gaia_dagster.resources.registry import RegistryFileError, parse_registry
from gaia_dagster.stages.request import request_forecast

from miner_server import TEST_VALIDATOR, signed_client  # noqa: E402
from test_faults import QUERY, T0  # noqa: E402
from test_freeze import row_of, serve, verify_all  # noqa: E402

HOSTILE = ["javascript:alert(document.cookie)//", "file:///etc/passwd#", "data:text/html,<script>alert(1)</script>#"]


@pytest.mark.parametrize("announced", HOSTILE)
def test_a_store_url_that_is_not_http_is_refused_naming_the_miner(announced, tmp_path):
    scheme = announced.split(":")[0]
    with ExitStack() as stack:
        miner = serve(stack, tmp_path / "miner", f"//urls-{scheme}", public_base_url=announced)
        repo = ValidatorRepository(f"sqlite:///{tmp_path / 'a.db'}")
        repo.create_schema()
        outcome = verify_all(repo, [miner], tmp_path / "a")[miner.hotkey]
        assert outcome.startswith("rejected:") and miner.hotkey in outcome and "T0=2026-10-20" in outcome, outcome
        assert f"is not an http or https URL (scheme {scheme!r})" in outcome, outcome
        assert row_of(repo, miner).status == "failed" and row_of(repo, miner).zarr_store_url is None
        # a second validator gets the fast path: the answer carries the URL, refused before it is stored
        other = ValidatorRepository(f"sqlite:///{tmp_path / 'b.db'}")
        other.create_schema()
        other.upsert_miner(miner.hotkey, miner.base_url)
        fast = request_forecast(other, signed_client(), miner, T0, TEST_VALIDATOR, QUERY)
        assert fast.outcome == "failed" and f"scheme {scheme!r}" in fast.detail and miner.hotkey in fast.detail
        assert row_of(other, miner).zarr_store_url is None


def test_only_a_web_url_on_the_miner_endpoint_is_ever_a_link():
    base = "http://127.0.0.1:8091"
    assert miner_link("/forecasts/job.zarr", base) == MetadataValue.url(f"{base}/forecasts/job.zarr")
    assert miner_link(f"{base}/forecasts/job.zarr", base) == MetadataValue.url(f"{base}/forecasts/job.zarr")
    for url in [*HOSTILE, "JavaScript:alert(1)", "http://evil.example/x", "//evil.example/x",
                "http://user:pw@127.0.0.1:8091/x", "https://127.0.0.1:8091/x"]:
        shown = miner_link(url, base)
        assert not isinstance(shown, type(MetadataValue.url(base))) and "not a link" in shown.text, url
    assert store_url_problem("/forecasts/job.zarr", base) is None
    assert "not on the miner's registered endpoint" in store_url_problem("http://169.254.169.254/latest", base)
    assert url_problem("https://miner.example.org") is None and "names no host" in url_problem("http://")


@pytest.mark.parametrize("url", [*HOSTILE, "ftp://10.0.0.5/x", "10.0.0.5:8091"])
def test_a_registry_entry_whose_url_is_not_http_is_refused_naming_the_miner(url):
    text = f'[{{"hotkey": "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY", "url": {url!r}}}]'.replace("'", '"')
    with pytest.raises(RegistryFileError, match="miner registry miners.json, entry 0 .*miner 5GrwvaEF.*not an http"):
        parse_registry(text, "miners.json")
