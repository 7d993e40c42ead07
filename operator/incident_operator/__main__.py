"""``python -m incident_operator``: runs the operator against the current kubeconfig."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

import kopf

from .config import ConfigError, load_config


def build_parser() -> argparse.ArgumentParser:
    from .cli.conventions import OneLineErrors, add_version

    parser = OneLineErrors(prog="incident-operator", description=__doc__)
    add_version(parser, "incident-operator")
    parser.add_argument("--config", help="operator configuration YAML (default: $INCIDENT_OPERATOR_CONFIG)")
    parser.add_argument("-n", "--namespace", action="append", default=[],
                        help="watch only this namespace (repeatable); default: from config, else all")
    parser.add_argument("--liveness", default=None,
                        help="health endpoint, e.g. http://0.0.0.0:8081/healthz (default: from config port)")
    parser.add_argument("--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"incident-operator: {error}", file=sys.stderr)
        return 2
    from . import app

    kopf.configure(verbose=args.verbose, log_format=kopf.LogFormat.PLAIN)
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    namespaces = tuple(args.namespace) or config.namespaces
    liveness = args.liveness or f"http://0.0.0.0:{config.health_port}/healthz"
    try:
        asyncio.run(app.run(config, namespaces=namespaces, liveness=liveness))
    except ConfigError as error:  # a setting only judged at start-up (the watched namespaces)
        print(f"incident-operator: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
