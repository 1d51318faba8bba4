"""Serve one reference miner: ``gaia-dagster miner serve`` / ``python -m gaia_dagster.miner``."""

from __future__ import annotations

import argparse
from pathlib import Path

from gaia_dagster.miner.app import MinerSettings, create_app, miner_profiles


def serve(host: str, port: int, settings: MinerSettings) -> None:
    """Run the miner's app with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning", timeout_graceful_shutdown=1)


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of one miner (profile, hotkey URI, storage, grid, slowness)."""
    parser = argparse.ArgumentParser(prog="gaia-dagster miner serve", description="Serve one Gaia reference miner.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument("--profile", choices=miner_profiles(), default="good")
    parser.add_argument("--hotkey-uri", default="//gaia-miner", help="key URI of the miner's hotkey")
    parser.add_argument("--data-dir", default="./miner-data", help="where forecasts and job records are kept")
    parser.add_argument("--resolution", type=float, default=1.5, help="grid spacing in degrees")
    parser.add_argument("--inference-delay", type=float, default=0.0, help="seconds to wait before inference")
    parser.add_argument("--public-url", default="", help="base URL validators reach (default http://HOST:PORT)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and serve until interrupted; the public URL defaults to http://HOST:PORT."""
    args = build_parser().parse_args(argv)
    settings = MinerSettings(
        hotkey_uri=args.hotkey_uri, profile=args.profile, data_dir=Path(args.data_dir),
        resolution=args.resolution, inference_delay_s=args.inference_delay,
        public_base_url=args.public_url or f"http://{args.host}:{args.port}",
    )
    serve(args.host, args.port, settings)
    return 0
