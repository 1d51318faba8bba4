"""``gaia-dagster``: demo, miner serve, score, weights, leaderboard, db upgrade, metrics, validator whoami,
instance init."""

from __future__ import annotations

import argparse
import sys


def _demo(args: argparse.Namespace) -> int:
    from gaia_dagster.demo import run_demo

    return run_demo(miners=args.miners, date=args.date, as_json=args.json, resolution=args.resolution,
                    timeout_s=args.timeout, ui_port=args.ui_port if args.ui else None)


def _miner_serve(args: argparse.Namespace, rest: list[str]) -> int:
    from gaia_dagster.miner.serve import main as serve_main

    return serve_main(rest) or 0


def _db_upgrade(args: argparse.Namespace) -> int:
    from gaia_dagster.db.repository import ValidatorRepository, default_db_url
    from gaia_dagster.resources.settings import dagster_home

    url = args.url or default_db_url(dagster_home())
    revision = ValidatorRepository(url).create_schema()
    print(f"validator DB at {url} is at revision {revision}")
    return 0


def _metrics(args: argparse.Namespace) -> int:
    from gaia_dagster.db.repository import ValidatorRepository, default_db_url
    from gaia_dagster.resources.metrics import prometheus_text
    from gaia_dagster.resources.settings import dagster_home

    repo = ValidatorRepository(args.url or default_db_url(dagster_home()))
    repo.create_schema()
    sys.stdout.write(prometheus_text(repo))
    return 0


def _validator_whoami(args: argparse.Namespace) -> int:
    """The hotkey the pipeline signs with: the code location's own ``miner_access`` resource, its
    ``GAIA_*`` settings resolved as Dagster resolves them, then ``MinerAccess.identity()``."""
    import json

    from gaia_dagster.definitions import default_resources
    from gaia_dagster.resources.identity import ValidatorIdentityError

    try:
        identity = default_resources()["miner_access"].process_config_and_initialize().identity()
    except ValidatorIdentityError as exc:
        print(f"gaia-dagster validator whoami: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(identity.as_dict()))
    else:
        print(identity.ss58)
        print(f"from {identity.describe()}")
    return 0


def _instance_init(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gaia_dagster.resources.settings import init_instance
    from gaia_dagster.runtime.daemon import prepare_storage

    result = init_instance(Path(args.home) if args.home else None)
    prepare_storage(result.home)  # created once, here, before a webserver and a daemon race to
    print(result.describe())
    print(f"DAGSTER_HOME={result.home}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gaia-dagster", description="The Gaia weather validator on Dagster.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run one simulated day end to end against a fleet of loopback miners")
    demo.add_argument("--miners", type=int, default=6)
    demo.add_argument("--date", required=True, help="the day to run, YYYY-MM-DD")
    demo.add_argument("--json", action="store_true", help="end with one JSON line of results")
    demo.add_argument("--resolution", type=float, default=1.5, help="grid spacing in degrees")
    demo.add_argument("--timeout", type=float, default=540.0, help="give up on the day after this many seconds")
    demo.add_argument("--ui", action="store_true", help="also start the Dagster webserver, and keep it up afterwards")
    demo.add_argument("--ui-port", type=int, default=3000, help="the webserver's port on 127.0.0.1 (with --ui)")
    miner = sub.add_parser("miner", help="the reference miner")
    miner_sub = miner.add_subparsers(dest="miner_command", required=True)
    miner_sub.add_parser("serve", help="serve one reference miner (see --help after serve)", add_help=False)
    db = sub.add_parser("db", help="the validator DB")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_sub.add_parser("upgrade", help="create or upgrade the validator DB schema")
    upgrade.add_argument("--url", default="", help="SQLAlchemy URL (default: GAIA_DB_URL or the instance's SQLite)")
    sub.add_parser("score", help="score a forecast store as validators do (see: score era5 --help)", add_help=False)
    sub.add_parser("weights", help="the weights Gaia's validators set for given score rows and metagraph "
                                   "(see: weights --help)", add_help=False)
    sub.add_parser("leaderboard", help="the 15-day leaderboard with rank intervals (see: leaderboard --help)",
                   add_help=False)
    validator = sub.add_parser("validator", help="this validator's identity")
    validator_sub = validator.add_subparsers(dest="validator_command", required=True)
    whoami = validator_sub.add_parser("whoami", help="print the hotkey miner requests are signed with, and its source")
    whoami.add_argument("--json", action="store_true", help="one JSON object instead of text")
    instance = sub.add_parser("instance", help="the Dagster instance directory ($DAGSTER_HOME)")
    instance_sub = instance.add_subparsers(dest="instance_command", required=True)
    init = instance_sub.add_parser("init", help="create $DAGSTER_HOME with the project's dagster.yaml (never "
                                                "overwrites an existing one)")
    init.add_argument("--home", default="", help="the instance directory (default: $DAGSTER_HOME or ./.dagster_home)")
    metrics = sub.add_parser("metrics", help="print the duplicate counters in Prometheus text format")
    metrics.add_argument("--url", default="", help="validator DB URL (default: GAIA_DB_URL or the instance's SQLite)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["miner", "serve"]:
        return _miner_serve(argparse.Namespace(), argv[2:])
    if argv[:1] == ["score"]:
        from gaia_dagster.score import main as score_main

        return score_main(argv[1:])
    if argv[:1] == ["weights"]:
        from gaia_dagster.weights_cli import main as weights_main

        return weights_main(argv[1:])
    if argv[:1] == ["leaderboard"]:
        from gaia_dagster.leaderboard_cli import main as leaderboard_main

        return leaderboard_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        return _demo(args)
    if args.command == "db":
        return _db_upgrade(args)
    if args.command == "metrics":
        return _metrics(args)
    if args.command == "validator":
        return _validator_whoami(args)
    if args.command == "instance":
        return _instance_init(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
