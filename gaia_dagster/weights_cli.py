"""``gaia-dagster weights --input FILE [--json]``: Gaia's weight path on the inputs it reads.

Anyone (a miner, an operator, a reviewer) can give it the score rows, the metagraph, the block and
the environment a Gaia validator sees and get the vector that validator hands to the chain and the
u16 values the chain receives. The pipeline's ``chain_weights`` calls the same core function.
"""

from __future__ import annotations

import argparse
import json
import sys

from gaia_dagster.core.weights_deployed import deployed_weights
from gaia_dagster.core.weights_input import WeightInputError, weight_inputs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gaia-dagster weights",
                                     description="The weights a Gaia v2.9.96 validator sets for these inputs.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", help="the JSON input file (- for standard input)")
    source.add_argument("--from-db", action="store_true",
                        help="read the validator's own DB, metagraph and settings (as the chain_weights asset does)")
    parser.add_argument("--at", default="", help="with --from-db: the time to compute at (ISO 8601; default now)")
    parser.add_argument("--dump-input", default="", help="with --from-db: also write the input document to this file")
    parser.add_argument("--json", action="store_true", help="end with one JSON object: weights, uids_u16, u16")
    return parser


def document_from_db(at: str) -> dict:
    """The input document of this validator: its DB, registry/metagraph and weight settings, read
    through the code location's own resources, at ``at`` (now when empty)."""
    from datetime import datetime, timezone

    from gaia_dagster.core.weights_input import parse_time
    from gaia_dagster.definitions import default_resources
    from gaia_dagster.stages.weights import weights_input_document

    resources = default_resources()
    db, registry, chain = (resources[name].process_config_and_initialize()
                           for name in ("validator_db", "miner_registry", "chain"))
    now = parse_time(at, "--at") if at else datetime.now(timezone.utc)
    return weights_input_document(db.repo, registry, chain, now)


def _read(path: str) -> object:
    text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
    return json.loads(text)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        document = document_from_db(args.at) if args.from_db else _read(args.input)
        if args.dump_input:
            with open(args.dump_input, "w", encoding="utf-8") as out:
                json.dump(document, out)
        inputs = weight_inputs(document)
    except (OSError, ValueError) as exc:  # WeightInputError and json errors are ValueErrors
        kind = "input" if isinstance(exc, WeightInputError) else type(exc).__name__
        print(f"gaia-dagster weights: {args.input or 'the validator DB'}: {kind}: {exc}", file=sys.stderr)
        return 2
    result = deployed_weights(inputs.rows, inputs.nodes, inputs.now, inputs.block, inputs.env)
    if result.weights is None:
        print(f"no weights would be set: {result.reason}")
    else:
        print(f"{result.rows_used} score rows in the window; version key {result.version_key}; "
              f"burn UID {result.burn_uid if result.burn_uid is not None else '-'}; "
              f"validators zeroed {result.zeroed_validators or '-'}; no IP {result.zeroed_no_ip or '-'}")
        print(f"{'uid':>5} {'weight':>12} {'u16':>6}")
        for uid, value in zip(result.uids, result.u16):
            print(f"{uid:>5} {result.weights[uid]:>12.6g} {value:>6}")
    if args.json:
        print(json.dumps(result.as_output()))
    return 0
