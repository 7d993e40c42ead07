"""``incidentctl draft NAME [--kind status-update|resolution|follow-up]``: a customer-communication draft.

Renders from the same templates the operator uses (shipped defaults, overridden by a templates
ConfigMap given with ``--templates-configmap`` or files in ``--templates-dir``) in the same
sandbox, and prints Markdown (or the Statuspage incident body with ``--output statuspage``).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from ..api import INITIAL_STATE
from ..domain.notify import comms
from .common import CommandError, add_cluster_arguments, api_client, default_namespace, read_incident, run_command


def register(subparsers) -> None:
    parser = subparsers.add_parser("draft", help="render a customer-communication draft for an incident",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", nargs="?", help="the Incident's name")
    parser.add_argument("--kind", choices=comms.KINDS, default="status-update",
                        help="which draft (default: status-update)")
    parser.add_argument("-o", "--output", choices=("markdown", "statuspage"), default="markdown",
                        help="markdown text, or the Statuspage incident JSON")
    parser.add_argument("--templates-configmap", metavar="NAME",
                        help="override templates from this ConfigMap (in the incident's namespace)")
    parser.add_argument("--templates-dir", type=Path, metavar="DIR",
                        help="override templates from <kind>.md.j2 files in this directory (to try a template out)")
    add_cluster_arguments(parser)
    parser.set_defaults(func=lambda args: run_command(run, args))


def _overrides(args: argparse.Namespace) -> tuple[dict[str, str] | None, str]:
    if args.templates_dir:
        found = {path.name: path.read_text() for path in sorted(args.templates_dir.glob("*.md.j2"))}
        return found, str(args.templates_dir)
    if args.templates_configmap:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        namespace = default_namespace(args)
        try:
            configmap = client.CoreV1Api(api_client(args)).read_namespaced_config_map(
                args.templates_configmap, namespace)
        except ApiException as error:
            raise CommandError(f"cannot read ConfigMap {namespace}/{args.templates_configmap}: "
                               f"HTTP {error.status} {error.reason}") from None
        return dict(configmap.data or {}), f"ConfigMap {namespace}/{args.templates_configmap}"
    return None, ""


def run(args: argparse.Namespace) -> int:
    incident = read_incident(args)
    overrides, source = _overrides(args)
    now = datetime.now(timezone.utc)
    state = (incident.get("status") or {}).get("state") or (incident.get("spec") or {}).get("state") or INITIAL_STATE
    if args.kind not in comms.kinds_for(state):
        print(f"incidentctl draft: note: the incident is {state}; a {args.kind} is usually sent once it is "
              f"resolved", file=sys.stderr)
    try:
        drafts = comms.render_drafts(incident, now, overrides, kinds=(args.kind,), override_source=source)
    except comms.DraftError as error:
        raise CommandError(str(error)) from None
    for error in drafts.errors:
        print(f"incidentctl draft: template error, used the default instead: {error}", file=sys.stderr)
    if args.output == "statuspage":
        print(json.dumps(comms.statuspage_payload(incident, drafts), indent=2))
    else:
        sys.stdout.write(drafts.texts[args.kind])
    return 1 if drafts.errors else 0
