"""The CRDs as data: their OpenAPI schemas as JSON Schema, their defaults, their CEL rules.

The CRD YAML in ``crds/`` is the one source of truth; the package ships copies
(``incident_operator/crds/*.yaml``, kept equal by ``make crds`` and a unit test), so the tools work
from an installed wheel with no checkout.

* :func:`json_schema` turns a version's ``openAPIV3Schema`` into a JSON Schema (draft 2020-12)
  that refuses unknown fields the way ``kubectl apply``'s strict field validation does;
* :func:`apply_defaults` fills ``default`` values in as the API server does before validating;
* :func:`cel_violations` evaluates the ``x-kubernetes-validations`` rules offline with
  cel-python (transition rules, which compare with ``oldSelf``, need the stored object and are
  skipped).
"""

from __future__ import annotations

import copy
import functools
import importlib.resources
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import yaml

from .yamlmarks import Loader

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

_OBJECT_META = {
    "type": "object",
    "description": "Standard object metadata (name, namespace, labels, annotations).",
    "properties": {
        "name": {"type": "string", "maxLength": 253,
                 "description": "Name of the object, unique in its namespace (a lower-case DNS subdomain)."},
        "namespace": {"type": "string", "maxLength": 63, "description": "Namespace of the object."},
        "generateName": {"type": "string", "description": "Prefix for a generated name (kubectl create only)."},
        "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 63},
                   "description": "Labels (key/value strings)."},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"},
                        "description": "Annotations (key/value strings)."},
    },
}


@dataclass(frozen=True)
class CrdVersion:
    group: str
    version: str
    kind: str
    plural: str
    schema: Mapping[str, Any]  # openAPIV3Schema, as written in the CRD
    source: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


class CrdError(ValueError):
    pass


def packaged_crd_dir() -> Path:
    """``incident_operator/crds`` inside the installed package."""
    return Path(str(importlib.resources.files("incident_operator") / "crds"))


def load_crds(directory: str | Path | None = None) -> dict[tuple[str, str], CrdVersion]:
    """Every served version of every CRD in ``directory`` (default: the packaged copies), keyed by
    ``(apiVersion, kind)``."""
    folder = Path(directory) if directory else packaged_crd_dir()
    files = sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml"))
    if not files:
        raise CrdError(f"no CRD YAML found in {folder}")
    out: dict[tuple[str, str], CrdVersion] = {}
    for path in files:
        try:
            docs = list(yaml.load_all(path.read_text(), Loader=Loader))
        except (OSError, yaml.YAMLError) as error:
            raise CrdError(f"cannot read CRD {path}: {error}") from None
        for doc in docs:
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc.get("spec") or {}
            for version in spec.get("versions") or []:
                if not version.get("served", True):
                    continue
                schema = ((version.get("schema") or {}).get("openAPIV3Schema")) or {"type": "object"}
                crd = CrdVersion(group=spec["group"], version=version["name"], kind=spec["names"]["kind"],
                                 plural=spec["names"]["plural"], schema=schema, source=str(path))
                out[(crd.api_version, crd.kind)] = crd
    return out


# -- JSON Schema -------------------------------------------------------------------------------

def _convert(node: Any, strict: bool) -> Any:
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key == "nullable":
            continue
        if key == "properties":
            out[key] = {name: _convert(child, strict) for name, child in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = _convert(value, strict) if isinstance(value, dict) else value
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [_convert(child, strict) for child in value]
        elif key == "format" and value not in ("date-time", "date"):
            continue  # int64, double, byte...: no meaning for JSON Schema validators
        else:
            out[key] = copy.deepcopy(value)
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    preserve = node.get("x-kubernetes-preserve-unknown-fields")
    if (strict and node.get("type") == "object" and "properties" in node and "additionalProperties" not in node
            and not preserve and not node.get("x-kubernetes-embedded-resource")):
        out["additionalProperties"] = False
    return out


def json_schema(crd: CrdVersion, strict: bool = True) -> dict[str, Any]:
    """A JSON Schema for one kind (draft 2020-12), with apiVersion/kind pinned for editors."""
    body = _convert(crd.schema, strict)
    props = dict(body.get("properties") or {})
    props["apiVersion"] = {**(props.get("apiVersion") or {}), "type": "string", "enum": [crd.api_version]}
    props["kind"] = {**(props.get("kind") or {}), "type": "string", "enum": [crd.kind]}
    props["metadata"] = {**copy.deepcopy(_OBJECT_META), "description": (props.get("metadata") or {}).get(
        "description", _OBJECT_META["description"])}
    body["properties"] = props
    body["required"] = sorted(set(body.get("required") or []) | {"apiVersion", "kind", "metadata"})
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"https://{crd.group}/schemas/{crd.kind.lower()}_{crd.version}.json",
        "title": f"{crd.kind} ({crd.api_version})",
        **body,
    }


# -- defaults ----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _packaged_crds() -> dict[tuple[str, str], CrdVersion]:
    return load_crds()


def as_the_api_server_stores_it(body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` with the packaged CRD's defaults filled in, as the operator reads it back after
    ``kubectl apply`` (unchanged when its apiVersion/kind is not one of ours)."""
    crd = _packaged_crds().get((str(body.get("apiVersion")), str(body.get("kind"))))
    return apply_defaults(crd.schema, body) if crd else dict(body)


def apply_defaults(schema: Mapping[str, Any], value: Any) -> Any:
    """A copy of ``value`` with the schema's ``default``s filled in (structural defaulting)."""
    value = copy.deepcopy(value)
    _default(schema, value)
    return value


def _default(schema: Mapping[str, Any], value: Any) -> None:
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for name, child in props.items():
            if (name not in value or value[name] is None) and "default" in child:
                value[name] = copy.deepcopy(child["default"])
            if name in value:
                _default(child, value[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name, item in value.items():
                if name not in props:
                    _default(extra, item)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _default(schema["items"], item)


# -- CEL -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CelViolation:
    path: tuple[Any, ...]
    message: str
    rule: str


class _Unconvertible(Exception):
    pass


def _kubernetes_functions() -> dict[str, Any]:
    """The parts of Kubernetes' CEL libraries (strings and lists extensions) that cel-python lacks."""
    from celpy import celtypes

    S, I, L, B = celtypes.StringType, celtypes.IntType, celtypes.ListType, celtypes.BoolType  # noqa: E741 - CEL's type letters

    def split(text, sep, limit=None):
        parts = str(text).split(str(sep)) if limit is None or int(limit) < 0 else str(text).split(str(sep), int(limit) - 1)
        return L([S(p) for p in parts])

    def substring(text, start, end=None):
        return S(str(text)[int(start):] if end is None else str(text)[int(start):int(end)])

    return {
        "trim": lambda text: S(str(text).strip()),
        "lowerAscii": lambda text: S(str(text).lower()),
        "upperAscii": lambda text: S(str(text).upper()),
        "replace": lambda text, old, new, n=None: S(str(text).replace(str(old), str(new),
                                                                      -1 if n is None else int(n))),
        "split": split,
        "substring": substring,
        "charAt": lambda text, index: S(str(text)[int(index): int(index) + 1]),
        "indexOf": lambda target, item, *_: I(str(target).find(str(item)) if isinstance(target, str)
                                              else (list(target).index(item) if item in target else -1)),
        "lastIndexOf": lambda target, item: I(str(target).rfind(str(item)) if isinstance(target, str)
                                              else (len(target) - 1 - list(reversed(target)).index(item)
                                                    if item in target else -1)),
        "join": lambda items, sep="": S(str(sep).join(str(i) for i in items)),
        "isSorted": lambda items: B(list(items) == sorted(items)),
        "sum": lambda items: sum(items[1:], items[0]) if len(items) else I(0),
        "min": lambda items: min(items),
        "max": lambda items: max(items),
    }


@functools.lru_cache(maxsize=None)
def _program(rule: str):
    try:
        import celpy
    except ModuleNotFoundError as error:  # the CLI prints this line; the operator never gets here
        raise ModuleNotFoundError("checking the CRDs' CEL rules offline needs cel-python, the `cli` extra: "
                                  "pip install 'incident-operator[cli]'", name=error.name) from None

    env = celpy.Environment()
    return env.program(env.compile(rule), functions=_kubernetes_functions())


def cel_available() -> bool:
    try:
        import celpy  # noqa: F401
    except ImportError:
        return False
    return True


def _to_cel(value: Any, schema: Mapping[str, Any]):
    from celpy import celtypes

    kind = schema.get("type")
    if value is None:
        return None
    if kind == "object" or isinstance(value, dict):
        if not isinstance(value, dict):
            raise _Unconvertible()
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties") if isinstance(schema.get("additionalProperties"), dict) else {}
        return celtypes.MapType({celtypes.StringType(k): _to_cel(v, props.get(k, extra)) for k, v in value.items()
                                 if v is not None})
    if kind == "array" or isinstance(value, list):
        if not isinstance(value, list):
            raise _Unconvertible()
        return celtypes.ListType([_to_cel(v, schema.get("items") or {}) for v in value])
    if isinstance(value, bool):
        if kind not in (None, "boolean"):
            raise _Unconvertible()
        return celtypes.BoolType(value)
    if kind == "integer":
        if not isinstance(value, int):
            raise _Unconvertible()
        return celtypes.IntType(value)
    if kind == "number":
        if not isinstance(value, (int, float)):
            raise _Unconvertible()
        return celtypes.DoubleType(float(value))
    if kind == "string":
        if not isinstance(value, str):
            raise _Unconvertible()
        return celtypes.StringType(value)
    import celpy

    return celpy.json_to_cel(value)


def _rules(schema: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    return schema.get("x-kubernetes-validations") or ()


def cel_violations(schema: Mapping[str, Any], value: Any, path: tuple[Any, ...] = ()) -> list[CelViolation]:
    """Evaluates every non-transition CEL rule of ``schema`` against ``value`` (already defaulted)."""
    out: list[CelViolation] = []
    for node_path, node_schema, node_value in _walk(schema, value, path):
        for rule in _rules(node_schema):
            text = str(rule.get("rule") or "")
            if not text or "oldSelf" in text:
                continue  # transition rules need the stored object
            out.extend(_evaluate(text, rule, node_schema, node_value, node_path))
    return out


def _walk(schema: Mapping[str, Any], value: Any, path: tuple[Any, ...]) -> Iterator[tuple[tuple, Mapping, Any]]:
    if value is None:
        return
    yield path, schema, value
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties") if isinstance(schema.get("additionalProperties"), dict) else None
        for name, child in value.items():
            child_schema = props.get(name) or extra
            if child_schema is not None:
                yield from _walk(child_schema, child, path + (name,))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from _walk(schema["items"], item, path + (index,))


def _evaluate(text: str, rule: Mapping[str, Any], schema: Mapping[str, Any], value: Any,
              path: tuple[Any, ...]) -> list[CelViolation]:
    try:
        program = _program(text)
    except ModuleNotFoundError:
        raise  # cel-python missing: say so, rather than skip every rule unseen
    except Exception as error:  # noqa: BLE001 - a rule cel-python cannot compile is not the user's fault
        logging.getLogger(__name__).debug("cannot compile CEL rule %r: %s", text, error)
        return []
    try:
        activation = {"self": _to_cel(value, schema)}
    except _Unconvertible:
        return []  # the value has the wrong type: the schema check reports that
    message = str(rule.get("message") or f"failed rule: {text}")
    try:
        result = program.evaluate(activation)
    except Exception as error:  # noqa: BLE001 - the API server refuses an object whose rule errors
        result = error
    if isinstance(result, Exception):
        reason = _cel_error(result)
        if "undeclared reference" in reason or "no matching overload" in reason:
            # A function or overload only the API server's CEL has: leave this rule to it.
            logging.getLogger(__name__).debug("cannot evaluate CEL rule %r offline: %s", text, reason)
            return []
        return [CelViolation(path, f"{' '.join(message.split())} (the rule could not be evaluated: {reason})", text)]
    if bool(result):
        return []
    return [CelViolation(path, " ".join(message.split()), text)]


def _cel_error(error: BaseException) -> str:
    args = getattr(error, "args", ())
    text = str(args[0]) if args else str(error)
    return text.split(" (in activation")[0][:300]
