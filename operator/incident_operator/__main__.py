"""``python -m incident_operator``: runs the operator against the current kubeconfig.

``incident-operator check-config --config FILE`` checks the configuration the way start-up does and
exits 1 with a one-line message when it is refused (the chart runs it as an init container, so a
typo in values stops the new pod before the running one is replaced).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time

import kopf

from .config import ConfigError, OperatorConfig, load_config


def build_parser() -> argparse.ArgumentParser:
    from .cli.conventions import OneLineErrors, add_version

    parser = OneLineErrors(prog="incident-operator", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    add_version(parser, "incident-operator")
    parser.add_argument("command", nargs="?", choices=["run", "check-config"], default="run",
                        help="run (default): run the operator; "
                             "check-config: check the configuration and exit")
    parser.add_argument("--config", help="operator configuration YAML (default: $INCIDENT_OPERATOR_CONFIG)")
    parser.add_argument("-n", "--namespace", action="append", default=[],
                        help="watch only this namespace (repeatable); default: from config, else all")
    parser.add_argument("--liveness", default=None,
                        help="health endpoint, e.g. http://0.0.0.0:8081/healthz (default: from config port)")
    parser.add_argument("--peering", metavar="NAME", default=None,
                        help="coordinate with other replicas through kopf's (Cluster)KopfPeering NAME: "
                             "the newest operator acts, the others pause (default: standalone, no peering)")
    parser.add_argument("--verbose", action="store_true")
    return parser


def check_config(config: OperatorConfig, namespaces: tuple[str, ...]) -> None:
    """What start-up refuses beyond load_config, without starting anything (raises ConfigError)."""
    config.alertmanager_for(namespaces)


def one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config)
        if args.command == "check-config":
            check_config(config, tuple(args.namespace) or config.namespaces)
            print(f"incident-operator: configuration {args.config or '(defaults)'} is valid")
            return 0
    except ConfigError as error:
        print(f"incident-operator: {one_line(error)}", file=sys.stderr)
        return 1 if args.command == "check-config" else 2
    from . import app

    kopf.configure(verbose=args.verbose, log_format=kopf.LogFormat.PLAIN)
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    namespaces = tuple(args.namespace) or config.namespaces
    liveness = args.liveness or f"http://0.0.0.0:{config.health_port}/healthz"
    try:
        # With peering, the operator started last has the highest priority: during a rolling update
        # the new pod takes over and the old one pauses until it is stopped (chart README, "Upgrades").
        asyncio.run(app.run(config, namespaces=namespaces, liveness=liveness, peering=args.peering,
                            peering_priority=time.time_ns() // 1_000_000))
    except ConfigError as error:  # a setting only judged at start-up (the watched namespaces)
        print(f"incident-operator: {one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
