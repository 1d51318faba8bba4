"""Serve one reference miner: ``gaia-dagster miner serve`` / ``python -m gaia_dagster.miner``."""

from __future__ import annotations

import argparse
from pathlib import Path

from gaia_dagster.miner.access import DEFAULT_BURST, DEFAULT_MIN_STAKE, DEFAULT_RATE_PER_S, AccessConfigError
from gaia_dagster.miner.app import MinerSettings, create_app, miner_profiles
from gaia_dagster.miner.limits import DEFAULT_MAX_BODY_BYTES
from gaia_dagster.miner.faults import FAULTS, fault_names


def serve(host: str, port: int, settings: MinerSettings) -> None:
    """Run the miner's app with uvicorn until interrupted."""
    import uvicorn

    try:
        app = create_app(settings)
    except AccessConfigError as exc:
        raise SystemExit(f"gaia-dagster miner serve: refusing to start: {exc}") from None
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=1)


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of one miner (profile, hotkey, storage, grid, slowness, access policy and
    limits, injected fault)."""
    parser = argparse.ArgumentParser(prog="gaia-dagster miner serve", description="Serve one Gaia reference miner.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument("--profile", choices=miner_profiles(), default="good")
    parser.add_argument("--hotkey-uri", default=None,
                        help="key URI of the miner's hotkey (default //gaia-miner unless --wallet-name is given)")
    parser.add_argument("--wallet-name", default=None, help="bittensor wallet holding the miner's hotkey")
    parser.add_argument("--wallet-hotkey", default="default", help="hotkey name inside --wallet-name")
    parser.add_argument("--wallet-path", default=None, help="wallets directory (default ~/.bittensor/wallets)")
    parser.add_argument("--allow-validator", action="append", default=None, metavar="SS58",
                        help="serve this validator hotkey (repeatable); an allowlist or --stake-table is required")
    parser.add_argument("--stake-table", default=None, metavar="PATH",
                        help="JSON {validator hotkey: stake}, re-read when it changes: validators staked at least "
                             "--min-validator-stake are served")
    parser.add_argument("--min-validator-stake", type=float, default=DEFAULT_MIN_STAKE,
                        help=f"stake threshold of --stake-table (default {DEFAULT_MIN_STAKE:g})")
    parser.add_argument("--dev-open-access", action="store_true",
                        help="development only: serve any correctly signed hotkey (no allowlist, no stake table)")
    parser.add_argument("--rate-limit", type=float, default=DEFAULT_RATE_PER_S,
                        help=f"requests a second per validator hotkey (default {DEFAULT_RATE_PER_S:g})")
    parser.add_argument("--rate-burst", type=float, default=DEFAULT_BURST,
                        help=f"burst per validator hotkey (default {DEFAULT_BURST:g})")
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES,
                        help=f"largest request body, refused 413 before it is read (default {DEFAULT_MAX_BODY_BYTES})")
    parser.add_argument("--data-dir", default="./miner-data", help="where forecasts and job records are kept")
    parser.add_argument("--resolution", type=float, default=1.5, help="grid spacing in degrees")
    parser.add_argument("--inference-delay", type=float, default=0.0, help="seconds to wait before inference")
    parser.add_argument("--fault", choices=fault_names(), default=None,
                        help="inject one misbehaviour (testing validators): "
                             + "; ".join(f"{name}: {text}" for name, text in FAULTS.items()))
    parser.add_argument("--fault-count", type=int, default=None,
                        help="an API fault hits only the first N requests (a transient fault; default: every one)")
    parser.add_argument("--fault-delay", type=float, default=None,
                        help="seconds the timeout/gone_mid_job faults hang and slow_drip drips (default 3600)")
    parser.add_argument("--fault-copy-of", default=None, metavar="SS58",
                        help="copier fault: the hotkey whose good forecast this miner re-signs as its own")
    parser.add_argument("--public-url", default="", help="base URL validators reach (default http://HOST:PORT)")
    return parser


def wallet_keypair(name: str, hotkey: str, path: str | None = None):  # noqa: ANN201 - a bittensor Keypair
    """The hotkey keypair of a bittensor wallet (``Wallet(name=..., hotkey=...).hotkey``)."""
    from bittensor_wallet import Wallet

    wallet = Wallet(name=name, hotkey=hotkey, path=path) if path else Wallet(name=name, hotkey=hotkey)
    try:
        return wallet.hotkey
    except Exception as exc:  # noqa: BLE001 - reported with the wallet named
        raise SystemExit(f"miner: cannot load the hotkey of wallet {name}/{hotkey}: {type(exc).__name__}: {exc}")


def identity_of(args: argparse.Namespace) -> tuple[str, object | None]:
    """Hotkey rule: ``--hotkey-uri`` or ``--wallet-name``/``--wallet-hotkey``, not both.

    Returns (hotkey_uri label, keypair or None); a wallet's keypair is passed as is (its secret is
    never turned back into a URI), the label ``wallet:NAME/HOTKEY`` only names it in messages.
    """
    if args.wallet_name and args.hotkey_uri:
        raise SystemExit("miner: give either --hotkey-uri or --wallet-name/--wallet-hotkey, not both")
    if args.wallet_name:
        label = f"wallet:{args.wallet_name}/{args.wallet_hotkey}"
        return label, wallet_keypair(args.wallet_name, args.wallet_hotkey, args.wallet_path)
    return args.hotkey_uri or "//gaia-miner", None


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and serve until interrupted; the public URL defaults to http://HOST:PORT."""
    args = build_parser().parse_args(argv)
    hotkey_uri, keypair = identity_of(args)
    settings = MinerSettings(
        hotkey_uri=hotkey_uri, keypair=keypair, profile=args.profile, data_dir=Path(args.data_dir),
        resolution=args.resolution, inference_delay_s=args.inference_delay,
        public_base_url=args.public_url or f"http://{args.host}:{args.port}",
        allowed_validators=tuple(args.allow_validator) if args.allow_validator else None,
        stake_table=Path(args.stake_table) if args.stake_table else None,
        min_validator_stake=args.min_validator_stake, dev_open_access=args.dev_open_access,
        rate_per_s=args.rate_limit, rate_burst=args.rate_burst, max_body_bytes=args.max_body_bytes,
        fault=args.fault, fault_count=args.fault_count, fault_copy_of=args.fault_copy_of,
        **({"fault_delay_s": args.fault_delay} if args.fault_delay is not None else {}),
    )
    serve(args.host, args.port, settings)
    return 0
