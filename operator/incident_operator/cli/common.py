"""Shared helpers for incidentctl subcommands: cluster access and reading an Incident."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from ..api import GROUP, INCIDENTS, VERSION
from .conventions import describe


class CommandError(Exception):
    """A user-facing error: one line without a traceback; exit status 1 (a refusal, not found),
    or 2 for usage and I/O errors (``exit_code=2``)."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--namespace", help="namespace of the incident (default: the kubeconfig context's)")
    parser.add_argument("--kubeconfig", help="path to the kubeconfig (default: $KUBECONFIG or ~/.kube/config)")
    parser.add_argument("--context", help="kubeconfig context to use")
    parser.add_argument("-f", "--filename", type=Path,
                        help="read the Incident from this YAML/JSON file instead of the cluster")


def api_client(args: argparse.Namespace):
    from kubernetes import config as kube_config

    try:
        return kube_config.new_client_from_config(config_file=args.kubeconfig, context=args.context)
    except kube_config.ConfigException:
        try:
            kube_config.load_incluster_config()
        except kube_config.ConfigException as error:
            raise CommandError(f"no cluster access: {error}") from None
        from kubernetes import client

        return client.ApiClient()


def default_namespace(args: argparse.Namespace) -> str:
    if args.namespace:
        return args.namespace
    from kubernetes import config as kube_config

    try:
        _, active = kube_config.list_kube_config_contexts(config_file=args.kubeconfig)
        if args.context:
            contexts, _ = kube_config.list_kube_config_contexts(config_file=args.kubeconfig)
            active = next((c for c in contexts if c["name"] == args.context), active)
        return (active.get("context") or {}).get("namespace") or "default"
    except (kube_config.ConfigException, OSError, TypeError):
        return "default"


def read_incident(args: argparse.Namespace) -> dict[str, Any]:
    """The Incident named ``args.name``, from ``--filename`` or the cluster."""
    if args.filename:
        try:
            documents = [d for d in yaml.safe_load_all(args.filename.read_text()) if d]
        except (OSError, yaml.YAMLError) as error:
            raise CommandError(f"cannot read {args.filename}: {' '.join(str(error).split())}", 2) from None
        for document in documents:
            if document.get("kind") == "Incident" and (not args.name or
                                                       (document.get("metadata") or {}).get("name") == args.name):
                return document
        raise CommandError(f"no Incident {args.name or ''} in {args.filename}".replace("  ", " "))
    if not args.name:
        raise CommandError("name the incident (or give --filename)", 2)
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    namespace = default_namespace(args)
    api = client.CustomObjectsApi(api_client(args))
    try:
        return api.get_namespaced_custom_object(GROUP, VERSION, namespace, INCIDENTS, args.name)
    except ApiException as error:
        if error.status == 404:
            raise CommandError(f"incident {namespace}/{args.name} not found") from None
        raise CommandError(f"cannot read incident {namespace}/{args.name}: HTTP {error.status} {error.reason}") from None
    except Exception as error:  # noqa: BLE001 - urllib3's connection errors: one line, not 99
        raise CommandError(f"cannot read incident {namespace}/{args.name}: {describe(error)}") from None


def run_command(function, args: argparse.Namespace) -> int:
    try:
        return function(args)
    except CommandError as error:
        print(f"incidentctl {args.command}: error: {error}", file=sys.stderr)
        return error.exit_code
