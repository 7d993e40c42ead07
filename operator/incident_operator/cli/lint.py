"""``incidentctl lint PATH...``: check DetectionRules and Incidents offline, before they reach a cluster.

Files or directories (searched for *.yaml / *.yml), multi-document YAML, ``-`` for stdin. Each
DetectionRule and Incident is checked against the CRD's schema (strictly: unknown fields are
errors, as with ``kubectl apply``), the CRD's CEL rules, PromQL syntax, the detector configuration
and semantic rules (see docs/gitops.md). Other documents are skipped.

Prints ``file:line:column: Kind/name: message`` per problem (``--format json|github|sarif`` for
machines) and exits 1 when there is any: 0 when clean, 2 for usage and I/O errors (a path that
does not exist or cannot be read, no YAML file at all, CRDs that cannot be loaded).
"""

from __future__ import annotations

import argparse
import sys

from ..gitops.lint import FORMATS
from .conventions import version


def register(subparsers) -> None:
    parser = subparsers.add_parser("lint", help="validate DetectionRules and Incidents offline (CI for GitOps repos)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", metavar="PATH", help="YAML files or directories ('-' for stdin)")
    parser.add_argument("--crds", metavar="DIR",
                        help="CRD YAML to validate against (default: the CRDs shipped with this version)")
    parser.add_argument("--allow-warnings", action="store_true",
                        help="exit 0 when there are only warnings (heuristic checks)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the problems, no summary")
    parser.add_argument("-o", "--format", "--output", dest="format", choices=FORMATS, default="text",
                        help="text (file:line:column: ...), json, github (workflow annotations) or sarif (2.1.0)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..gitops.crds import CrdError
    from ..gitops.lint import format_report, lint_paths

    try:
        report = lint_paths(args.paths, crd_dir=args.crds)
    except CrdError as error:
        print(f"incidentctl lint: error: {error}", file=sys.stderr)
        return 2
    lines, code = format_report(report, allow_warnings=args.allow_warnings, fmt=args.format, tool_version=version())
    for line in lines:
        print(line)
    for path, why in report.unreadable:
        print(f"incidentctl lint: error: {path}: {why}", file=sys.stderr)
    if report.unreadable:
        return 2
    if report.files == 0:
        print(f"incidentctl lint: error: no YAML files (*.yaml, *.yml) in {' '.join(args.paths)}", file=sys.stderr)
        return 2
    if not args.quiet:
        errors, warnings = len(report.errors), len(report.warnings)
        print(f"{report.checked} object(s) in {report.files} file(s) checked: {errors} error(s), "
              f"{warnings} warning(s)" + (f"; {report.skipped} document(s) of other API groups skipped"
                                          if report.skipped else ""), file=sys.stderr)
    return code
