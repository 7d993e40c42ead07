"""``incidentctl schema --out DIR``: JSON Schemas of the CRDs, for editors and other validators.

Writes ``<kind>_<version>.json`` per kind (lower-case, the layout of the public CRD schema
catalogs, e.g. ``detectionrule_v1alpha1.json``) and ``all.json`` choosing by ``kind``, converted
from the CRDs' OpenAPI schemas (strict: unknown fields are flagged, as ``kubectl apply`` does).
With yaml-language-server (VS Code's YAML extension, Neovim, Helix...), put at the top of a file::

    # yaml-language-server: $schema=../schemas/detectionrule_v1alpha1.json

or map globs to schemas in the editor settings (see docs/gitops.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("schema", help="export JSON Schemas of the CRDs for editors (yaml-language-server)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="directory to write the schemas to")
    parser.add_argument("--crds", metavar="DIR", help="CRD YAML to convert (default: the CRDs shipped with this version)")
    parser.add_argument("--loose", action="store_true", help="allow unknown fields (by default they are flagged)")
    parser.set_defaults(func=run)


def export(out: Path, crd_dir: str | None = None, strict: bool = True) -> list[Path]:
    from ..gitops.crds import JSON_SCHEMA_DIALECT, json_schema, load_crds

    crds = load_crds(crd_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    branches = []
    for (_, kind), crd in sorted(crds.items(), key=lambda item: (item[1].kind, item[1].version)):
        schema = json_schema(crd, strict=strict)
        path = out / f"{kind.lower()}_{crd.version}.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=False) + "\n")
        written.append(path)
        inner = {k: v for k, v in schema.items() if k not in ("$schema", "$id")}
        branches.append({
            "if": {"properties": {"apiVersion": {"const": crd.api_version}, "kind": {"const": kind}},
                   "required": ["apiVersion", "kind"]},
            "then": inner,
        })
    combined = {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": "incident-operator resources (" + ", ".join(sorted({c.kind for c in crds.values()})) + ")",
        "type": "object",
        "allOf": branches,
    }
    path = out / "all.json"
    path.write_text(json.dumps(combined, indent=2) + "\n")
    written.append(path)
    return written


def run(args: argparse.Namespace) -> int:
    from ..gitops.crds import CrdError

    try:
        written = export(args.out, args.crds, strict=not args.loose)
    except (CrdError, OSError) as error:
        print(f"incidentctl schema: error: {error}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0
