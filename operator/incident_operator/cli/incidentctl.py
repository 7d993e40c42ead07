"""``incidentctl``: the incident-operator command line, one module per subcommand.

The dispatcher knows only the table below. A subcommand module provides either

- ``register(subparsers)``, adding its argparse parser and setting ``func(args) -> int`` as a
  default (the usual case: it gets the shared ``--kubeconfig``/``--context``/``-n``), or
- ``main(argv) -> int``, a self-contained tool that parses its own arguments (everything after
  the subcommand name is passed through).

To add a subcommand: write ``cli/<name>.py`` and add one line to ``SUBCOMMANDS``.
Modules are imported lazily, so one broken subcommand never breaks the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "draft": ("incident_operator.cli.draft", "render a customer-communication draft for an incident"),
    "postmortem": ("incident_operator.cli.postmortem", "render the post-incident review of an incident as Markdown"),
    "backtest": ("incident_operator.cli.backtest", "replay recorded series through a DetectionRule's detector"),
    "lint": ("incident_operator.cli.lint", "validate DetectionRules and Incidents offline (CI for GitOps repos)"),
    "test": ("incident_operator.cli.ruletest", "run DetectionRule unit tests (promtool-style, see docs/rule-tests.md)"),
    "schema": ("incident_operator.cli.schema", "export JSON Schemas of the CRDs for editors (yaml-language-server)"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="incidentctl", description="Work with incident-operator incidents.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name) if name == only else None
        if module is not None and hasattr(module, "register"):
            module.register(subparsers)
        else:
            # Listed for --help; parsed for real once the module is loaded.
            sub = subparsers.add_parser(name, help=help_text, add_help=False)
            sub.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    if command is None:
        parser = build_parser()
        if argv and not argv[0].startswith("-"):
            parser.error(f"unknown command {argv[0]!r} (choose from {', '.join(SUBCOMMANDS)})")
        parser.parse_args(argv)  # prints help for -h
        parser.print_help()
        return 2
    module = importlib.import_module(SUBCOMMANDS[command][0])
    if not hasattr(module, "register"):
        return int(module.main(argv[1:]) or 0)
    args = build_parser(only=command).parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
