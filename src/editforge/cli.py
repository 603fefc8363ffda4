"""A small command line for the parts worth running outside the workflow.

    editforge check-config config/config.yaml   # validate a config, print the resolved one
    editforge embedded-model                    # convert the embedded model once, print its folder
    editforge sandbox program.py                # run an untrusted program in the sandbox
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from editforge import config as efconfig
from editforge.sandbox import SANDBOX_SETTINGS


def _check_config(args: argparse.Namespace) -> int:
    try:
        cfg = efconfig.load(args.path)
    except efconfig.ConfigError as err:
        print(err, file=sys.stderr)
        return 2
    print(json.dumps(cfg, indent=2))
    return 0


def _embedded_model(_: argparse.Namespace) -> int:
    from editforge.backend.embedded import embedded_model_path

    print(embedded_model_path())
    return 0


def _sandbox(args: argparse.Namespace) -> int:
    from editforge.sandbox import Limits, run_program, select_isolation

    isolation = select_isolation(args.sandbox)
    limits = Limits(timeout_s=args.timeout)
    result = run_program(Path(args.path).read_text(encoding="utf-8"), limits=limits, isolation=isolation)
    print(json.dumps(dataclasses.asdict(result) | {"isolation": isolation.describe(limits)}, indent=2))
    return 0 if result.outcome == "pass" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="editforge", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check-config", help="validate a config file")
    check.add_argument("path")
    check.set_defaults(run=_check_config)
    embedded = commands.add_parser("embedded-model", help="prepare the embedded SmolLM2 model")
    embedded.set_defaults(run=_embedded_model)
    sandbox = commands.add_parser("sandbox", help="run a Python file in the evaluation sandbox")
    sandbox.add_argument("path")
    sandbox.add_argument("--timeout", type=float, default=15.0)
    sandbox.add_argument("--sandbox", choices=SANDBOX_SETTINGS, default="auto", help="the isolation (default: auto)")
    sandbox.set_defaults(run=_sandbox)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
