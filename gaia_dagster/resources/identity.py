"""The validator's identity: the hotkey that signs every miner request.

Rule: a bittensor wallet when a wallet name is given (``GAIA_WALLET_NAME``, with
``GAIA_WALLET_HOTKEY`` and ``GAIA_WALLET_PATH``), else a key URI (``GAIA_VALIDATOR_URI``, by default
the public development key ``//gaia-dagster-validator``). ``resolve_identity`` is the one place this
choice is made: ``MinerAccess`` signs with it and ``gaia-dagster validator whoami`` reports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from gaia_dagster.resources.settings import DEFAULT_VALIDATOR_URI

DEFAULT_WALLET_HOTKEY = "default"
DEFAULT_WALLET_PATH = "~/.bittensor/wallets"


class ValidatorIdentityError(ValueError):
    """The configured identity cannot be loaded (missing, unreadable or encrypted key file, bad URI)."""


@dataclass(frozen=True)
class ValidatorIdentity:
    """The validator's keypair and where it came from (``source`` is ``wallet`` or ``uri``)."""

    keypair: Any = field(repr=False, compare=False)   # a bittensor_wallet Keypair
    source: str
    ss58: str
    wallet_name: str = ""
    wallet_hotkey: str = ""
    wallet_path: str = ""
    hotkey_file: str = ""
    uri_label: str = ""           # the URI when it is a public dev URI; never a mnemonic or seed

    @property
    def is_development_key(self) -> bool:
        return self.source == "uri" and self.uri_label == DEFAULT_VALIDATOR_URI

    def describe(self) -> str:
        """Where the hotkey came from, in one line (secrets never included)."""
        if self.source == "wallet":
            return (f"wallet {self.wallet_name!r}, hotkey {self.wallet_hotkey!r} under {self.wallet_path} "
                    f"(file {self.hotkey_file})")
        text = f"key URI {self.uri_label}"
        if self.is_development_key:
            text += " (the public development key: set GAIA_WALLET_NAME to sign as a real validator)"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {"hotkey": self.ss58, "source": self.source, "wallet_name": self.wallet_name or None,
                "wallet_hotkey": self.wallet_hotkey or None, "wallet_path": self.wallet_path or None,
                "hotkey_file": self.hotkey_file or None, "uri": self.uri_label or None,
                "development_key": self.is_development_key}


def _uri_label(uri: str) -> str:
    """A dev URI (``//name``) is shown as is; anything else may hold a secret and is not shown."""
    return uri if uri.startswith("//") and " " not in uri else "(secret URI or mnemonic, not shown)"


def resolve_identity(wallet_name: str = "", wallet_hotkey: str = "", wallet_path: str = "",
                     uri: str = "") -> ValidatorIdentity:
    """The validator identity of these settings (the rule is in the module docstring).

    A wallet hotkey or path without a wallet name is refused rather than silently signing with the
    URI: an operator who meant a wallet must not end up with the development key.
    """
    wallet_name, wallet_hotkey, wallet_path = wallet_name.strip(), wallet_hotkey.strip(), wallet_path.strip()
    if wallet_name:
        return _wallet_identity(wallet_name, wallet_hotkey or DEFAULT_WALLET_HOTKEY,
                                wallet_path or DEFAULT_WALLET_PATH)
    if wallet_hotkey or wallet_path:
        raise ValidatorIdentityError(
            f"a wallet hotkey ({wallet_hotkey or '-'}) or path ({wallet_path or '-'}) is set but no wallet "
            f"name: set GAIA_WALLET_NAME too, or unset GAIA_WALLET_HOTKEY/GAIA_WALLET_PATH to use a key URI")
    return _uri_identity(uri.strip() or DEFAULT_VALIDATOR_URI)


@lru_cache(maxsize=8)
def _uri_identity(uri: str) -> ValidatorIdentity:
    from gaia_dagster.core.signing import keypair_from_uri

    try:
        keypair = keypair_from_uri(uri)
    except Exception as exc:  # noqa: BLE001 - reported without the URI, which may be a secret
        raise ValidatorIdentityError(f"the validator key URI {_uri_label(uri)} is not a valid key URI "
                                     f"({type(exc).__name__})") from None
    return ValidatorIdentity(keypair, "uri", keypair.ss58_address, uri_label=_uri_label(uri))


def _wallet_identity(name: str, hotkey: str, path: str) -> ValidatorIdentity:
    from bittensor_wallet import Wallet

    wallet = Wallet(name=name, hotkey=hotkey, path=path)
    keyfile = wallet.hotkey_file
    where = f"validator wallet {name!r} hotkey {hotkey!r}: hotkey file {keyfile.path}"
    if not keyfile.exists_on_device():
        raise ValidatorIdentityError(f"{where} does not exist (wallets directory {path}; create the "
                                     f"hotkey with btcli, or point GAIA_WALLET_NAME/_HOTKEY/_PATH at it)")
    if not keyfile.is_readable():
        raise ValidatorIdentityError(f"{where} is not readable by this user")
    try:
        encrypted = keyfile.is_encrypted()
    except Exception as exc:  # noqa: BLE001
        raise ValidatorIdentityError(f"{where} cannot be read: {type(exc).__name__}: {exc}") from None
    if encrypted:
        # Loading it would prompt for a password on the terminal; the validator runs unattended.
        raise ValidatorIdentityError(f"{where} is encrypted; the validator signs unattended and needs an "
                                     f"unencrypted hotkey file (btcli's default for hotkeys)")
    try:
        keypair = wallet.hotkey
    except Exception as exc:  # noqa: BLE001 - a corrupt key file is named, never dumped
        raise ValidatorIdentityError(f"{where} cannot be loaded: {type(exc).__name__}: {exc}") from None
    return ValidatorIdentity(keypair, "wallet", keypair.ss58_address, wallet_name=name, wallet_hotkey=hotkey,
                             wallet_path=path, hotkey_file=str(keyfile.path))
