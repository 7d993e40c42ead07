"""``kubectl incident``: the kubectl plugin for incident-operator incidents.

Installed as ``kubectl-incident`` on the PATH (``pip install incident-operator``), so kubectl finds
it as a plugin::

    kubectl incident list [-n NS | -A] [--open]
    kubectl incident ack NAME [--owner WHO]         # owner: you, from the cluster (or kubeconfig, $USER)
    kubectl incident mitigate NAME
    kubectl incident resolve NAME [--resolution TEXT]
    kubectl incident close NAME
    kubectl incident timeline NAME
    kubectl incident draft NAME [--kind status-update|resolution|follow-up]
    kubectl incident postmortem NAME [-o FILE]

It uses the current kubeconfig, context and namespace (``--kubeconfig``, ``--context`` and
``-n``/``--namespace`` override them). A transition sets ``spec.state`` (and the fields that go
with it); the API server's rules decide whether it is allowed, and their refusal is shown as is.
Errors are one line on stderr and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import getpass
import importlib
import json
import os
import re
import sys
from datetime import datetime, timezone
from typing import Any, Sequence
from ..domain.common.timeutil import time_or_none

GROUP = "incidents.buttercream.io"
VERSION = "v1alpha1"
PLURAL = "incidents"
PROG = "kubectl incident"
STATE_ORDER = {"Triggered": 0, "Acknowledged": 1, "Investigating": 2, "Mitigated": 3, "Resolved": 4, "Closed": 5}
PRIORITY_STYLE = {"P1": "bold red", "P2": "bold dark_orange", "P3": "yellow", "P4": "cyan"}
DELEGATED = ("draft", "postmortem")


class PluginError(Exception):
    """A user-facing error: one line on stderr, exit status 1."""


# -- arguments --------------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    """Usage mistakes are one line too: what is wrong and where to look."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {message} (see '{self.prog} -h')\n")


def _cluster_options(parser: argparse.ArgumentParser, top: bool) -> None:
    default = None if top else argparse.SUPPRESS  # sub-command flags must not clobber the top-level ones
    parser.add_argument("-n", "--namespace", default=default, help="namespace (default: the kubeconfig context's)")
    parser.add_argument("--context", default=default, help="kubeconfig context to use")
    parser.add_argument("--kubeconfig", default=default, help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Work with incident-operator incidents from kubectl.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Run 'kubectl incident COMMAND -h' for a command's options.")
    _cluster_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("list", aliases=["ls"], help="incidents with priority, state, owner, response deadline, "
                                                     "escalation level and age")
    _cluster_options(p, top=False)
    p.add_argument("-A", "--all-namespaces", action="store_true", help="incidents of every namespace")
    p.add_argument("--open", action="store_true", help="only incidents not yet Resolved or Closed")
    p.add_argument("-l", "--selector", help="label selector, e.g. incidents.buttercream.io/rule=login-spike")

    p = sub.add_parser("ack", aliases=["acknowledge"], help="acknowledge: you (or --owner) take the incident")
    _cluster_options(p, top=False)
    p.add_argument("name")
    p.add_argument("--owner", help="who owns it (default: you, as the cluster knows you; else kubeconfig user, $USER)")

    for verb, what in (("mitigate", "customer impact is mitigated"), ("close", "close the incident (P1/P2 need a "
                                                                                "complete review)")):
        p = sub.add_parser(verb, help=what)
        _cluster_options(p, top=False)
        p.add_argument("name")
        p.add_argument("--owner", help="also set the owner (required once acknowledged, if not set yet)")

    p = sub.add_parser("resolve", help="resolve the incident; the signal is then watched for a relapse")
    _cluster_options(p, top=False)
    p.add_argument("name")
    p.add_argument("--resolution", help="what fixed it (quoted in the resolution notice)")
    p.add_argument("--owner", help="also set the owner (required once acknowledged, if not set yet)")

    p = sub.add_parser("timeline", help="the incident's timeline (status.timeline)")
    _cluster_options(p, top=False)
    p.add_argument("name")
    p.add_argument("-o", "--output", choices=("table", "json"), default="table")

    for verb in DELEGATED:
        p = sub.add_parser(verb, add_help=False, help=f"incidentctl {verb} (customer-communication draft)"
                           if verb == "draft" else f"incidentctl {verb} (the post-incident review as Markdown)")
        p.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


# -- cluster access -----------------------------------------------------------------------------------

def _api(args: argparse.Namespace):
    from kubernetes import client
    from kubernetes import config as kube_config

    try:
        return kube_config.new_client_from_config(config_file=args.kubeconfig, context=args.context)
    except kube_config.ConfigException as error:
        try:
            kube_config.load_incluster_config()
        except kube_config.ConfigException:
            raise PluginError(f"no usable kubeconfig: {error}") from None
        return client.ApiClient()
    except (OSError, ValueError, TypeError) as error:
        raise PluginError(f"cannot read the kubeconfig: {error}") from None


def _context(args: argparse.Namespace) -> dict[str, Any]:
    from kubernetes import config as kube_config

    try:
        contexts, active = kube_config.list_kube_config_contexts(config_file=args.kubeconfig)
    except (kube_config.ConfigException, OSError, TypeError, ValueError):
        return {}
    if args.context:
        active = next((c for c in contexts if c.get("name") == args.context), active)
    return active or {}


def _namespace(args: argparse.Namespace) -> str:
    return args.namespace or (_context(args).get("context") or {}).get("namespace") or "default"


def current_user(args: argparse.Namespace, api) -> str:
    """Who you are: the API server's answer (SelfSubjectReview), else the kubeconfig user, else $USER."""
    try:
        from kubernetes import client

        review = client.AuthenticationV1Api(api).create_self_subject_review(
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
        name = review.status.user_info.username if review and review.status and review.status.user_info else None
        if name:
            return name
    except Exception:  # noqa: BLE001 - older servers, RBAC: fall back to local knowledge
        pass
    user = (_context(args).get("context") or {}).get("user")
    if user:
        return str(user)
    try:
        return os.environ.get("USER") or getpass.getuser()
    except Exception:  # noqa: BLE001
        raise PluginError("cannot tell who you are: pass --owner NAME") from None


def _explain(error, namespace: str, name: str | None, action: str) -> PluginError:
    """One line from an ApiException: the server's own message, the way kubectl shows it."""
    status = getattr(error, "status", None)
    message = ""
    try:
        body = json.loads(getattr(error, "body", None) or "{}")
        message = body.get("message") or ""
    except (TypeError, ValueError):
        message = str(getattr(error, "body", "") or "")
    message = " ".join(str(message).split()) or f"HTTP {status} {getattr(error, 'reason', '')}".strip()
    if status == 404:
        if name and "could not find the requested resource" not in message:
            return PluginError(f"incident {name} not found in namespace {namespace}")
        return PluginError(f"the Incident API ({PLURAL}.{GROUP}/{VERSION}) is not installed in this cluster: "
                           "apply the CRDs first")
    if status == 422:
        detail = message.split(" is invalid: ", 1)[-1]
        hint = " (pass --owner NAME)" if "spec.owner is required" in detail else ""
        return PluginError(f"cannot {action} incident {name}: the API server refused it: {detail}{hint}")
    if status == 403:
        return PluginError(f"forbidden: {message}")
    if status == 401:
        return PluginError(f"unauthorized: your credentials were refused ({message})")
    if status == 409:
        return PluginError(f"conflict: incident {name} changed meanwhile; try again ({message})")
    return PluginError(f"{action} failed: {message}")


def _call(fn, namespace: str, name: str | None, action: str):
    from kubernetes.client.exceptions import ApiException

    try:
        return fn()
    except ApiException as error:
        raise _explain(error, namespace, name, action) from None
    except Exception as error:  # noqa: BLE001 - urllib3 connection errors and the like: one line
        text = " ".join(str(error).split())
        if "Max retries exceeded" in text or "Connection refused" in text or "NewConnectionError" in text:
            host = re.search(r"host='([^']+)', port=(\d+)", text)
            where = f" at {host.group(1)}:{host.group(2)}" if host else ""
            raise PluginError(f"cannot reach the Kubernetes API server{where}: connection refused") from None
        raise PluginError(f"{action} failed: {type(error).__name__}: {text[:300]}") from None


# -- formatting ------------------------------------------------------------------------------------------

def short_duration(seconds: float) -> str:
    """kubectl's style: 45s, 12m, 3h5m, 2d4h."""
    seconds = int(max(seconds, 0))
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes}m" if minutes and hours < 10 else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h" if hours and days < 10 else f"{days}d"


def response_text(incident: dict[str, Any], now: datetime) -> tuple[str, str | None]:
    """Time left to the response deadline, "breached 3m ago", or "—" (acknowledged, or no deadline yet)."""
    spec, status = incident.get("spec") or {}, incident.get("status") or {}
    if STATE_ORDER.get(spec.get("state") or "Triggered", 0) >= STATE_ORDER["Acknowledged"]:
        return "—", None
    deadline = time_or_none(status.get("responseDeadline"))
    if deadline is None:
        return "—", None
    left = (deadline - now).total_seconds()
    if left >= 0:
        return f"{short_duration(left)} left", "red" if left < 300 else None
    return f"breached {short_duration(-left)} ago", "bold red"


def _console(stream=None):
    from rich.console import Console

    stream = stream or sys.stdout
    tty = stream.isatty()
    return Console(file=stream, width=None if tty else 250, soft_wrap=not tty, highlight=False)


def _sort_key(incident: dict[str, Any]):
    spec, status = incident.get("spec") or {}, incident.get("status") or {}
    state = spec.get("state") or "Triggered"
    return (STATE_ORDER.get(state, 0) >= STATE_ORDER["Resolved"], status.get("priority") or spec.get("priority") or "P9",
            (incident.get("metadata") or {}).get("creationTimestamp") or "")


def render_list(incidents: Sequence[dict[str, Any]], now: datetime, all_namespaces: bool) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False, header_style="bold")
    if all_namespaces:
        table.add_column("NAMESPACE")
    longest = max((len((i.get("metadata") or {}).get("name", "")) for i in incidents), default=4)
    for column in ("NAME", "PRIORITY", "STATE", "OWNER", "RESPONSE", "LEVEL", "AGE", "TITLE"):
        if column == "TITLE":
            table.add_column(column, no_wrap=True, overflow="ellipsis", max_width=80)
        else:
            table.add_column(column, no_wrap=True, min_width=longest if column == "NAME" else len(column))
    for incident in sorted(incidents, key=_sort_key):
        meta, spec, status = incident.get("metadata") or {}, incident.get("spec") or {}, incident.get("status") or {}
        priority = status.get("priority") or spec.get("priority") or "—"
        response, style = response_text(incident, now)
        level = int((status.get("escalation") or {}).get("level") or 0)
        created = time_or_none(meta.get("creationTimestamp"))
        row = [
            meta.get("name", ""),
            Text(priority, style=PRIORITY_STYLE.get(priority, "")),
            spec.get("state") or "Triggered",
            spec.get("owner") or "—",
            Text(response, style=style or ""),
            Text(str(level), style="bold red" if level else "") if level else "—",
            short_duration((now - created).total_seconds()) if created else "—",
            spec.get("title") or "",
        ]
        if all_namespaces:
            row.insert(0, meta.get("namespace", ""))
        table.add_row(*row)
    return table


# -- commands ------------------------------------------------------------------------------------------------

def cmd_list(args: argparse.Namespace) -> int:
    from kubernetes import client

    api = client.CustomObjectsApi(_api(args))
    namespace = _namespace(args)
    kwargs = {"label_selector": args.selector} if args.selector else {}
    if args.all_namespaces:
        result = _call(lambda: api.list_cluster_custom_object(GROUP, VERSION, PLURAL, **kwargs), "", None, "list")
    else:
        result = _call(lambda: api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, **kwargs),
                       namespace, None, "list")
    items = list((result or {}).get("items") or [])
    if args.open:
        items = [i for i in items if STATE_ORDER.get((i.get("spec") or {}).get("state") or "Triggered", 0)
                 < STATE_ORDER["Resolved"]]
    if not items:
        where = "any namespace" if args.all_namespaces else f"namespace {namespace}"
        print(f"No {'open ' if args.open else ''}incidents found in {where}.", file=sys.stderr)
        return 0
    _console().print(render_list(items, datetime.now(timezone.utc), args.all_namespaces))
    return 0


def _transition(args: argparse.Namespace, state: str, verb: str, past: str, fields: dict[str, Any]) -> int:
    from kubernetes import client

    api_client = _api(args)
    api = client.CustomObjectsApi(api_client)
    namespace = _namespace(args)
    spec: dict[str, Any] = {"state": state, **{k: v for k, v in fields.items() if v is not None}}
    if state == "Acknowledged" and not spec.get("owner"):
        spec["owner"] = current_user(args, api_client)
    updated = _call(lambda: api.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, args.name,
                                                               {"spec": spec}),
                    namespace, args.name, verb)
    owner = ((updated or {}).get("spec") or {}).get("owner")
    print(f"incident {namespace}/{args.name} {past}" + (f" (owner: {owner})" if owner else ""))
    return 0


def cmd_ack(args):
    return _transition(args, "Acknowledged", "acknowledge", "acknowledged", {"owner": args.owner})


def cmd_mitigate(args):
    return _transition(args, "Mitigated", "mitigate", "mitigated", {"owner": args.owner})


def cmd_resolve(args):
    return _transition(args, "Resolved", "resolve", "resolved", {"owner": args.owner, "resolution": args.resolution})


def cmd_close(args):
    return _transition(args, "Closed", "close", "closed", {"owner": args.owner})


def cmd_timeline(args: argparse.Namespace) -> int:
    from kubernetes import client
    from rich.table import Table

    api = client.CustomObjectsApi(_api(args))
    namespace = _namespace(args)
    incident = _call(lambda: api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, args.name),
                     namespace, args.name, "read")
    spec, status = incident.get("spec") or {}, incident.get("status") or {}
    entries = list(status.get("timeline") or [])
    if args.output == "json":
        print(json.dumps(entries, indent=2))
        return 0
    console = _console()
    priority = status.get("priority") or spec.get("priority") or "?"
    console.print(f"[bold]{namespace}/{args.name}[/bold]  {priority}  {spec.get('state') or 'Triggered'}  "
                  f"{spec.get('title') or ''}", highlight=False, markup=True)
    if not entries:
        console.print("(no timeline yet: the operator has not processed this incident)")
        return 0
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("TIME", "TYPE", "ACTOR", "MESSAGE"):
        table.add_column(column, no_wrap=column != "MESSAGE")
    for entry in entries:
        table.add_row(str(entry.get("time") or ""), str(entry.get("type") or ""), str(entry.get("actor") or "—"),
                      str(entry.get("message") or ""))
    console.print(table)
    return 0


def cmd_delegated(args: argparse.Namespace) -> int:
    """``draft`` and ``postmortem`` are incidentctl subcommands: run them with the same cluster options."""
    command = args.command
    try:
        incidentctl = importlib.import_module("incident_operator.cli.incidentctl")
        module_name = incidentctl.SUBCOMMANDS[command][0]
        importlib.import_module(module_name)
    except (ImportError, KeyError, AttributeError):
        raise PluginError(f"'{command}' is not available in this version (incidentctl has no {command} "
                          "subcommand)") from None
    argv = [command, *args.rest]
    for flag, value in (("--namespace", args.namespace), ("--context", args.context),
                        ("--kubeconfig", args.kubeconfig)):
        if value and flag not in args.rest and not (flag == "--namespace" and "-n" in args.rest):
            argv += [flag, value]
    return int(incidentctl.main(argv) or 0)


COMMANDS = {"list": cmd_list, "ls": cmd_list, "ack": cmd_ack, "acknowledge": cmd_ack, "mitigate": cmd_mitigate,
            "resolve": cmd_resolve, "close": cmd_close, "timeline": cmd_timeline,
            "draft": cmd_delegated, "postmortem": cmd_delegated}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help(sys.stderr)
        return 2
    try:
        return COMMANDS[args.command](args)
    except PluginError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # noqa: BLE001 - never a traceback for a person at a terminal
        if os.environ.get("KUBECTL_INCIDENT_DEBUG"):
            raise
        print(f"error: {type(error).__name__}: {' '.join(str(error).split())[:500]}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
