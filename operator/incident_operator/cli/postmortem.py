"""``incidentctl postmortem NAME [-n NS] [--file FILE]``: the post-incident review as Markdown.

Reads the Incident with the Kubernetes client and puts together the automatic timeline, the
time to detect/acknowledge/mitigate/resolve and the review written in ``spec.review``.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

from ..domain.incident.postmortem import build_postmortem
from .common import add_cluster_arguments, read_incident, run_command


def register(subparsers) -> None:
    parser = subparsers.add_parser("postmortem", help="render the post-incident review of an incident as Markdown",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", nargs="?", help="the Incident's name")
    # -o is the output format in every command of the project, as in kubectl; a file is --file.
    parser.add_argument("-o", "--output", choices=("markdown",), default="markdown",
                        help="output format (the review is Markdown)")
    parser.add_argument("--file", type=Path, metavar="FILE", help="write to FILE instead of stdout")
    add_cluster_arguments(parser)
    parser.set_defaults(func=lambda args: run_command(run, args))


def run(args: argparse.Namespace) -> int:
    document = build_postmortem(read_incident(args), datetime.now(timezone.utc))
    if args.file:
        args.file.write_text(document)
    else:
        sys.stdout.write(document)
    return 0
