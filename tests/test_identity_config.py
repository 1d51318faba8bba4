"""A real operator's setup: the validator hotkey from a wallet (or a key URI), `validator whoami`,
GAIA_* settings reaching resources through EnvVar, the registry file format, `instance init`."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from bittensor_wallet import Keypair, Wallet
from dagster import DagsterInstance, EnvVar, asset, materialize

from gaia_dagster.cli import main
from gaia_dagster.core.retry import retry_policies
from gaia_dagster.core import fiber
from gaia_dagster.resources.identity import ValidatorIdentityError, resolve_identity
from gaia_dagster.resources.miner import MinerAccess, hotkey_for_uri
from gaia_dagster.resources.registry import MinerRegistry, RegistryFileError
from gaia_dagster.resources.settings import DEFAULT_VALIDATOR_URI, PROJECT_DAGSTER_YAML
from gaia_dagster.resources.validator_db import ValidatorDB

from miner_server import running_miner  # noqa: E402

MINER_URI = "//identity-miner"
MINER = hotkey_for_uri(MINER_URI)
T0 = datetime(2026, 10, 20, tzinfo=timezone.utc)
SETTINGS = ("GAIA_DB_URL", "GAIA_REGISTRY", "GAIA_RETRY_SCALE", "GAIA_MINER_TIMEOUT_S", "GAIA_RESOLUTION",
            "GAIA_WALLET_NAME", "GAIA_WALLET_HOTKEY", "GAIA_WALLET_PATH", "GAIA_VALIDATOR_URI")


@pytest.fixture
def no_settings(monkeypatch):
    """No GAIA_* setting in the environment (conftest sets GAIA_RETRY_SCALE for the other tests)."""
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def wallet(tmp_path) -> Wallet:
    """A real bittensor wallet on disk: coldkey and hotkey, no password."""
    w = Wallet(name="gaia-validator", hotkey="signer", path=str(tmp_path / "wallets"))
    w.create_new_coldkey(use_password=False, overwrite=True, suppress=True)
    w.create_new_hotkey(use_password=False, overwrite=True, suppress=True)
    return w


def _wallet_env(monkeypatch, w: Wallet) -> None:
    monkeypatch.setenv("GAIA_WALLET_NAME", w.name)
    monkeypatch.setenv("GAIA_WALLET_HOTKEY", w.hotkey_str)
    monkeypatch.setenv("GAIA_WALLET_PATH", w.path)


# -- identity ----------------------------------------------------------------------------------
def test_miner_requests_are_signed_with_the_wallet_hotkey(wallet):
    access = MinerAccess(wallet_name=wallet.name, wallet_hotkey=wallet.hotkey_str, wallet_path=wallet.path)
    public = Keypair(ss58_address=wallet.hotkeypub.ss58_address)  # hotkeypub.txt: no secret
    assert access.validator_hotkey() == wallet.hotkey.ss58_address == public.ss58_address
    key_uuid = fiber.new_key_uuid()
    _body, headers = access.client().fiber.request(key_uuid, b"k" * 32, MINER, {"job_id": "job-1"})
    assert headers[fiber.HEADER_VALIDATOR] == wallet.hotkey.ss58_address
    message = fiber.signed_message(headers[fiber.HEADER_NONCE], MINER, key_uuid)
    assert fiber.signature_valid(message, headers[fiber.HEADER_SIGNATURE], public.ss58_address)  # public key only


def test_a_miner_allowlisting_only_the_wallet_hotkey_accepts_the_validator(tmp_path, wallet):
    access = MinerAccess(wallet_name=wallet.name, wallet_hotkey=wallet.hotkey_str, wallet_path=wallet.path)
    with running_miner(tmp_path / "miner", hotkey_uri=MINER_URI, allowed_validators=(wallet.hotkey.ss58_address,),
                       inference_delay_s=3600) as (url, _):
        assert access.client().initiate_fetch(url, MINER, access.validator_hotkey(), T0).status == "fetch_accepted"
        dev_key = MinerAccess()  # the development key is not on this miner's allowlist
        with pytest.raises(Exception, match="403|allowlist"):
            dev_key.client().poll_job(url, MINER, "job-1")


def test_without_a_wallet_name_the_key_uri_signs():
    assert MinerAccess().validator_hotkey() == hotkey_for_uri(DEFAULT_VALIDATOR_URI)
    assert MinerAccess().identity().is_development_key
    access = MinerAccess(validator_hotkey_uri="//operator-validator")
    assert access.validator_hotkey() == hotkey_for_uri("//operator-validator")
    assert access.client().fiber.validator_ss58 == hotkey_for_uri("//operator-validator")
    assert not access.identity().is_development_key


def test_the_wallet_wins_over_the_uri(wallet):
    identity = resolve_identity(wallet.name, wallet.hotkey_str, wallet.path, "//operator-validator")
    assert identity.source == "wallet" and identity.ss58 == wallet.hotkey.ss58_address


def test_a_missing_or_unusable_wallet_is_a_clear_error(tmp_path, wallet):
    with pytest.raises(ValidatorIdentityError, match=str(Path(wallet.path) / "nobody" / "hotkeys" / "default")):
        MinerAccess(wallet_name="nobody", wallet_path=wallet.path).client()
    with pytest.raises(ValidatorIdentityError, match="hotkeys/absent does not exist"):
        MinerAccess(wallet_name=wallet.name, wallet_hotkey="absent", wallet_path=wallet.path).validator_hotkey()
    corrupt = Path(wallet.path) / wallet.name / "hotkeys" / "corrupt"
    corrupt.write_text('{"publicKey": "0x00"')
    with pytest.raises(ValidatorIdentityError, match=f"{corrupt} cannot be loaded"):
        resolve_identity(wallet.name, "corrupt", wallet.path)
    locked = Wallet(name=wallet.name, hotkey="locked", path=wallet.path)
    locked.create_new_hotkey(use_password=True, hotkey_password="Gaia-test-pass-1!", overwrite=True, suppress=True)
    with pytest.raises(ValidatorIdentityError, match="locked is encrypted"):
        resolve_identity(wallet.name, "locked", wallet.path)
    with pytest.raises(ValidatorIdentityError, match="no wallet name"):
        resolve_identity(wallet_hotkey="signer")


# -- gaia-dagster validator whoami --------------------------------------------------------------
def test_whoami_prints_the_wallet_hotkey_and_its_source(no_settings, wallet, capsys):
    _wallet_env(no_settings, wallet)
    assert main(["validator", "whoami"]) == 0
    hotkey_line, source_line = capsys.readouterr().out.strip().splitlines()
    assert hotkey_line == wallet.hotkey.ss58_address
    assert wallet.name in source_line and "'signer'" in source_line and wallet.path in source_line
    assert main(["validator", "whoami", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["hotkey"] == wallet.hotkey.ss58_address and data["source"] == "wallet"
    assert data["hotkey_file"] == str(Path(wallet.path) / wallet.name / "hotkeys" / "signer")


def test_whoami_reports_the_uri_and_never_a_mnemonic(no_settings, capsys):
    assert main(["validator", "whoami", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data == {**data, "hotkey": hotkey_for_uri(DEFAULT_VALIDATOR_URI), "source": "uri",
                    "uri": DEFAULT_VALIDATOR_URI, "development_key": True}
    mnemonic = Keypair.generate_mnemonic()
    no_settings.setenv("GAIA_VALIDATOR_URI", mnemonic)
    assert main(["validator", "whoami"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == Keypair.create_from_uri(mnemonic).ss58_address
    assert mnemonic not in out and mnemonic.split()[0] not in out.split()


def test_whoami_fails_naming_the_missing_wallet(no_settings, tmp_path, capsys):
    no_settings.setenv("GAIA_WALLET_NAME", "absent")
    no_settings.setenv("GAIA_WALLET_PATH", str(tmp_path / "wallets"))
    assert main(["validator", "whoami"]) == 1
    assert str(tmp_path / "wallets" / "absent" / "hotkeys" / "default") in capsys.readouterr().err


# -- the registry file ---------------------------------------------------------------------------
def _registry(tmp_path, content) -> MinerRegistry:
    path = tmp_path / "miners.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return MinerRegistry(path=str(path))


def test_registry_ignores_extra_keys_and_allows_a_missing_uid(tmp_path):
    entries = _registry(tmp_path, [
        {"hotkey": "5A", "url": "http://127.0.0.1:9001", "uid": 3, "axon": {"ip": "x"}, "stake": 1.5},
        {"hotkey": "5B", "url": "http://127.0.0.1:9002"},
        {"hotkey": "5C", "url": "http://127.0.0.1:9003", "uid": None},
    ]).entries()
    assert [(e.hotkey, e.base_url, e.uid) for e in entries] == [
        ("5A", "http://127.0.0.1:9001", 3), ("5B", "http://127.0.0.1:9002", None), ("5C", "http://127.0.0.1:9003", None)]


@pytest.mark.parametrize("content, message", [
    ([{"hotkey": "5A", "url": "http://a"}, {"hotkey": "5B"}], r"entry 1 \(hotkey 5B\): url missing"),
    ([{"hotkey": "5A", "url": "http://a"}, {"url": "http://b", "uid": 2}], r"entry 1: hotkey missing"),
    ([{"hotkey": "5A", "url": "http://a", "uid": "three"}], r"entry 0 \(hotkey 5A\): uid must be an integer"),
    ([["5A", "http://a"]], r"entry 0: expected an object"),
    ({"hotkey": "5A", "url": "http://a"}, r"expected a JSON list"),
    ('[{"hotkey": "5A", "url": "http://a"},', r"not valid JSON"),
])
def test_a_malformed_registry_names_the_file_and_the_entry(tmp_path, content, message):
    registry = _registry(tmp_path, content)
    with pytest.raises(RegistryFileError, match=message) as caught:
        registry.entries()
    assert str(tmp_path / "miners.json") in str(caught.value)


# -- GAIA_* settings through EnvVar --------------------------------------------------------------
@asset
def settings_probe(validator_db: ValidatorDB, miner_registry: MinerRegistry,
                   miner_access: MinerAccess) -> dict:
    validator_db.repo  # noqa: B018 - creates the schema where the URL points
    return {"db_url": validator_db.resolved_url(), "registry": str(miner_registry.registry_path()),
            "hotkey": miner_access.validator_hotkey(), "query_backoff_s": miner_access.retry("query").backoff_s,
            "retry_scale": miner_access.retry_scale, "read_timeout": miner_access.client().timeout.read}


def _probe(resources) -> dict:
    result = materialize([settings_probe], resources=resources, instance=DagsterInstance.ephemeral())
    assert result.success
    return result.output_for_node("settings_probe")


def test_set_variables_are_bound_as_envvar_and_read_at_runtime(no_settings, tmp_path, wallet):
    from gaia_dagster.definitions import build_definitions, default_resources

    db = tmp_path / "validator.db"
    no_settings.setenv("GAIA_DB_URL", "sqlite:///" + str(tmp_path / "not-this.db"))
    no_settings.setenv("GAIA_REGISTRY", str(tmp_path / "registry.json"))
    no_settings.setenv("GAIA_RETRY_SCALE", "0.5")
    no_settings.setenv("GAIA_MINER_TIMEOUT_S", "7.5")
    _wallet_env(no_settings, wallet)
    resources = default_resources()
    assert isinstance(resources["validator_db"].url, EnvVar) and resources["validator_db"].url.env_var_name == "GAIA_DB_URL"
    assert isinstance(resources["miner_access"].wallet_name, EnvVar)
    build_definitions(resources).get_repository_def().load_all_definitions()  # the code location loads

    no_settings.setenv("GAIA_DB_URL", f"sqlite:///{db}")  # read when the run initialises the resource
    seen = _probe(resources)
    assert seen["db_url"] == f"sqlite:///{db}" and db.exists()
    assert seen["registry"] == str(tmp_path / "registry.json")
    assert seen["hotkey"] == wallet.hotkey.ss58_address
    assert seen["retry_scale"] == "0.5" and seen["read_timeout"] == 7.5
    assert seen["query_backoff_s"] == retry_policies(0.5)["query"].backoff_s


def test_unset_variables_leave_the_defaults(no_settings, tmp_path):
    from gaia_dagster.definitions import build_definitions, default_resources

    no_settings.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    no_settings.setenv("GAIA_HOME", str(tmp_path / "home" / "gaia"))
    resources = default_resources()
    assert resources["validator_db"].url == "" and resources["miner_access"].wallet_name == ""
    build_definitions(resources).get_repository_def().load_all_definitions()
    seen = _probe(resources)
    assert seen["db_url"] == f"sqlite:///{tmp_path / 'home' / 'gaia' / 'validator.db'}"
    assert seen["registry"] == str(tmp_path / "home" / "gaia" / "miners.json")
    assert seen["hotkey"] == hotkey_for_uri(DEFAULT_VALIDATOR_URI)
    assert seen["retry_scale"] == "1.0" and seen["read_timeout"] == 30.0
    assert seen["query_backoff_s"] == retry_policies(1.0)["query"].backoff_s


@pytest.mark.parametrize("name,value", [("GAIA_RETRY_SCALE", "fast"), ("GAIA_RETRY_SCALE", "0"),
                                        ("GAIA_ANSWER_DEADLINE_S", "nan"), ("GAIA_ANSWER_DEADLINE_S", "-5"),
                                        ("GAIA_MINER_TIMEOUT_S", "inf"), ("GAIA_ERA5_DELAY_H", "1.5"),
                                        ("GAIA_RESOLUTION", "0"), ("GAIA_NETUID", "70000"),
                                        ("GAIA_SENSOR_INTERVAL_S", "0.5"), ("GAIA_WEIGHTS_INTERVAL_BLOCKS", "0"),
                                        ("GAIA_MIN_VALIDATOR_STAKE", "-1")])
def test_a_bad_number_stops_the_load_naming_its_variable_and_range(no_settings, name, value):
    from gaia_dagster.definitions import default_resources

    no_settings.setenv(name, value)
    with pytest.raises(ValueError, match=rf"{name}={value!r}.*(not|out of range).*(number|>)"):
        default_resources()


def test_every_bad_setting_is_named_at_once_and_the_code_location_does_not_load(no_settings, tmp_path):
    """``dagster definitions validate`` on the real workspace, as an operator runs it."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "GAIA_ANSWER_DEADLINE_S": "0", "GAIA_MINER_TIMEOUT_S": "NaN",
           "DAGSTER_HOME": str(tmp_path), "DAGSTER_DISABLE_TELEMETRY": "1"}
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([str(Path(sys.executable).with_name("dagster")), "definitions", "validate", "-w",
                           str(root / "workspace.yaml")], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode != 0
    out = done.stdout + done.stderr
    assert "GAIA_ANSWER_DEADLINE_S='0' is out of range" in out and "GAIA_MINER_TIMEOUT_S='NaN' is not" in out


# -- gaia-dagster instance init ------------------------------------------------------------------
def test_instance_init_writes_dagster_yaml_into_a_fresh_home(no_settings, tmp_path, capsys):
    home = tmp_path / "fresh" / "home"
    no_settings.setenv("DAGSTER_HOME", str(home))
    assert main(["instance", "init"]) == 0
    assert (home / "dagster.yaml").read_bytes() == PROJECT_DAGSTER_YAML.read_bytes()
    assert f"wrote {home / 'dagster.yaml'}" in capsys.readouterr().out
    with DagsterInstance.from_config(str(home)) as instance:  # a usable instance on that directory
        assert Path(instance.root_directory) == home and instance.run_storage is not None

    assert main(["instance", "init"]) == 0
    assert "already the project's instance config" in capsys.readouterr().out
    own = "# the operator's own instance\ntelemetry:\n  enabled: false\n"
    (home / "dagster.yaml").write_text(own)
    assert main(["instance", "init", "--home", str(home)]) == 0
    assert "kept" in capsys.readouterr().out and (home / "dagster.yaml").read_text() == own
