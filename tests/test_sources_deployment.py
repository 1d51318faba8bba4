"""GAIA_SOURCES picks the data sources' resource when the code location loads, by configuration alone.

``embedded`` (default) is the synthetic world; ``production`` the NOAA / ERA5 / WeatherBench2
loaders on Gaia's 0.25-degree grid, built without any network I/O; anything else stops the load
naming GAIA_SOURCES and the allowed values. Settings reach the resource as Dagster ``EnvVar``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from dagster import EnvVar

from gaia_dagster.core.contract import Grid
from gaia_dagster.resources.deployments import deployment_name, sources_for_deployment
from gaia_dagster.resources.setting_checks import SettingError, check_numeric_settings
from gaia_dagster.resources.sources import EmbeddedSources, ProductionSources

ROOT = Path(__file__).resolve().parents[1]
# Any connection that leaves the machine fails loudly in the process that loads the code location.
NO_NETWORK = textwrap.dedent('''
    import socket
    _connect = socket.socket.connect
    def _guard(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and not (host.startswith("127.") or host in ("::1", "localhost")) \\
                and self.family in (socket.AF_INET, socket.AF_INET6):
            raise RuntimeError(f"network I/O at load: connect to {address}")
        return _connect(self, address)
    socket.socket.connect = _guard
    _resolve = socket.getaddrinfo
    def _no_dns(host, *args, **kwargs):
        if host not in (None, "localhost", "127.0.0.1", "::1", "0.0.0.0", b"localhost"):
            raise RuntimeError(f"network I/O at load: resolve {host}")
        return _resolve(host, *args, **kwargs)
    socket.getaddrinfo = _no_dns
''')


def validate(tmp_path: Path, **settings: str) -> subprocess.CompletedProcess:
    """``dagster definitions validate`` on the real workspace, with sockets that refuse to leave loopback."""
    guard = tmp_path / "guard"
    guard.mkdir(exist_ok=True)
    (guard / "sitecustomize.py").write_text(NO_NETWORK)
    env = {**os.environ, **settings, "DAGSTER_HOME": str(tmp_path), "DAGSTER_DISABLE_TELEMETRY": "1",
           "PYTHONPATH": os.pathsep.join([str(guard), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([str(Path(sys.executable).with_name("dagster")), "definitions", "validate", "-w",
                           str(ROOT / "workspace.yaml")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def test_production_loads_by_configuration_alone_without_network(tmp_path):
    done = validate(tmp_path, GAIA_SOURCES="production", GAIA_ERA5_PROVIDER="cds", GAIA_CACHE_MAX_GB="2.5")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "network I/O at load" not in done.stdout + done.stderr


def test_a_bogus_gaia_sources_stops_the_load_naming_the_setting_and_the_allowed_values(tmp_path):
    done = validate(tmp_path, GAIA_SOURCES="crystal-ball")
    assert done.returncode != 0
    assert "GAIA_SOURCES='crystal-ball' is not one of embedded, production" in done.stdout + done.stderr


@pytest.mark.parametrize("settings, message", [
    ({"GAIA_SOURCES": "prod"}, "GAIA_SOURCES='prod' is not one of embedded, production"),
    ({"GAIA_SOURCES": "production", "GAIA_ERA5_PROVIDER": "ecmwf"}, "GAIA_ERA5_PROVIDER='ecmwf' is not one of arco, cds"),
])
def test_bad_choices_are_refused(settings, message):
    with pytest.raises(SettingError, match=message):
        deployment_name(settings)


@pytest.mark.parametrize("value", ["0", "-1", "NaN", "lots"])
def test_a_cache_cap_that_could_never_work_is_refused(value):
    with pytest.raises(SettingError, match="GAIA_CACHE_MAX_GB"):
        check_numeric_settings({"GAIA_CACHE_MAX_GB": value})


def test_embedded_is_the_default_and_keeps_its_grid():
    sources = sources_for_deployment({"GAIA_RESOLUTION": "5"})
    assert isinstance(sources, EmbeddedSources) and sources.resolution == 5.0


def test_production_checks_forecasts_on_gaias_grid_whatever_gaia_resolution_says(monkeypatch, tmp_path):
    for name, value in {"GAIA_SOURCES": "production", "GAIA_RESOLUTION": "1.5", "GAIA_ERA5_PROVIDER": "cds",
                        "GAIA_GFS_URL": "http://127.0.0.1:9", "GAIA_CACHE_MAX_GB": "0.5",
                        "GAIA_CLIMATOLOGY_URL": str(tmp_path / "clim.zarr")}.items():
        monkeypatch.setenv(name, value)
    sources = sources_for_deployment(os.environ)
    assert isinstance(sources, ProductionSources)
    assert sources.era5_provider == EnvVar("GAIA_ERA5_PROVIDER")  # bound, read when Dagster initialises it
    assert Grid(sources.resolution).shape == (721, 1440)
    ready = sources.process_config_and_initialize()
    assert (ready.era5_provider, ready.gfs_base_url, ready.cache_max_bytes()) == ("cds", "http://127.0.0.1:9", 500_000_000)
    assert ready.climatology_url == str(tmp_path / "clim.zarr")


def test_the_code_location_gets_the_chosen_sources(monkeypatch):
    from gaia_dagster.definitions import default_resources

    monkeypatch.setenv("GAIA_SOURCES", "production")
    assert isinstance(default_resources()["sources"], ProductionSources)
    monkeypatch.delenv("GAIA_SOURCES")
    assert isinstance(default_resources()["sources"], EmbeddedSources)
