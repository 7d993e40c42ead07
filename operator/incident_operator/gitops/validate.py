"""Validate an object against a CRD's structural OpenAPI v3 schema, the way the API server does.

The subset Kubernetes allows in CRDs (structural schemas): types, enums, patterns, bounds, lengths,
required fields, ``properties`` / ``additionalProperties`` / ``items``, ``nullable``,
``x-kubernetes-int-or-string``, ``x-kubernetes-preserve-unknown-fields``, list types ``set`` and
``map`` (unique items / keys), ``format: date-time`` and ``date``. Unknown fields are reported as
``kubectl apply``'s strict field validation does. Messages follow the API server's wording
(``spec.mode: Unsupported value: "Passive": supported values: "Active", "DryRun"``).

Pure Python, no dependency: ``incidentctl lint`` must run from a plain ``pip install``.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from functools import lru_cache
from typing import Any, Iterator, Mapping

from .yamlmarks import format_path

Path = tuple[Any, ...]
_DATE_TIME = re.compile(r"^\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)$")
_DATE = re.compile(r"^\d{4}-\d\d-\d\d$")


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern:
    return re.compile(pattern)


def validate(schema: Mapping[str, Any], value: Any, path: Path = ()) -> list[tuple[Path, str]]:
    """Every violation as ``(path, message)``, in document order of paths."""
    return list(_check(schema, value, path))


def _show(value: Any) -> str:
    if isinstance(value, str):
        return '"' + (value if len(value) <= 80 else value[:77] + "...") + '"'
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


def _type_ok(kind: str, value: Any) -> bool:
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and math.isfinite(value) and value.is_integer())
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return True


def _check(schema: Mapping[str, Any], value: Any, path: Path) -> Iterator[tuple[Path, str]]:
    field = format_path(path) or "<object>"
    if value is None:
        return  # the API server drops nulls of non-nullable fields (then defaults them)
    if schema.get("x-kubernetes-int-or-string"):
        if not (isinstance(value, str) or _type_ok("integer", value)):
            yield path, f"{field}: Invalid value: {_show(value)}: must be an integer or a string"
        return
    kind = schema.get("type")
    if kind and not _type_ok(kind, value):
        yield path, f"{field}: Invalid value: {_show(value)}: must be of type {kind}"
        return
    if "enum" in schema and value not in schema["enum"]:
        yield path, f"{field}: Unsupported value: {_show(value)}: supported values: " + ", ".join(
            _show(v) for v in schema["enum"])
    if isinstance(value, str):
        yield from _string(schema, value, path, field)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield from _number(schema, value, path, field)
    elif isinstance(value, list):
        yield from _array(schema, value, path, field)
    elif isinstance(value, dict):
        yield from _object(schema, value, path, field)
    for sub in schema.get("allOf") or ():
        yield from _check(sub, value, path)
    if schema.get("anyOf") and not any(not validate(sub, value, path) for sub in schema["anyOf"]):
        yield path, f"{field}: Invalid value: {_show(value)}: must match one of the allowed forms"


def _string(schema, value: str, path: Path, field: str):
    if "pattern" in schema and not _regex(schema["pattern"]).search(value):
        yield path, f"{field}: Invalid value: {_show(value)}: must match {schema['pattern']}"
    if "minLength" in schema and len(value) < schema["minLength"]:
        yield path, f"{field}: Invalid value: {_show(value)}: must be at least {schema['minLength']} characters"
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        yield path, f"{field}: Too long: may not be more than {schema['maxLength']} characters"
    fmt = schema.get("format")
    if fmt == "date-time":
        ok = bool(_DATE_TIME.match(value))
        if ok:
            try:
                datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
            except ValueError:
                ok = False
        if not ok:
            yield path, (f"{field}: Invalid value: {_show(value)}: must be an RFC 3339 date-time "
                         "(e.g. 2025-01-31T09:40:00Z)")
    elif fmt == "date":
        ok = bool(_DATE.match(value))
        if ok:
            try:
                datetime.strptime(value, "%Y-%m-%d")
            except ValueError:
                ok = False
        if not ok:
            yield path, f"{field}: Invalid value: {_show(value)}: must be a date (YYYY-MM-DD)"


def _number(schema, value: float, path: Path, field: str):
    if "minimum" in schema:
        low = float(schema["minimum"])
        if value < low or (schema.get("exclusiveMinimum") is True and value == low):
            op = ">" if schema.get("exclusiveMinimum") is True else ">="
            yield path, f"{field}: Invalid value: {_show(value)}: must be {op} {_show(schema['minimum'])}"
    if "maximum" in schema:
        high = float(schema["maximum"])
        if value > high or (schema.get("exclusiveMaximum") is True and value == high):
            op = "<" if schema.get("exclusiveMaximum") is True else "<="
            yield path, f"{field}: Invalid value: {_show(value)}: must be {op} {_show(schema['maximum'])}"
    if schema.get("multipleOf") and not math.isclose(value / float(schema["multipleOf"]),
                                                     round(value / float(schema["multipleOf"]))):
        yield path, f"{field}: Invalid value: {_show(value)}: must be a multiple of {schema['multipleOf']}"


def _array(schema, value: list, path: Path, field: str):
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        yield path, f"{field}: Too many: {len(value)}: must have at most {schema['maxItems']} items"
    if "minItems" in schema and len(value) < schema["minItems"]:
        yield path, f"{field}: Invalid value: {len(value)}: must have at least {schema['minItems']} items"
    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "set" or schema.get("uniqueItems"):
        seen: list[Any] = []
        for index, item in enumerate(value):
            if item in seen:
                yield path + (index,), f"{format_path(path + (index,))}: Duplicate value: {_show(item)}"
            seen.append(item)
    elif list_type == "map":
        keys = tuple(schema.get("x-kubernetes-list-map-keys") or ())
        seen_keys: list[tuple] = []
        for index, item in enumerate(value):
            if isinstance(item, dict):
                key = tuple(item.get(k) for k in keys)
                if key in seen_keys:
                    shown = ", ".join(f"{k}={_show(v)}" for k, v in zip(keys, key, strict=True))
                    yield path + (index,), f"{format_path(path + (index,))}: Duplicate value: {{{shown}}}"
                seen_keys.append(key)
    items = schema.get("items")
    if isinstance(items, dict):
        for index, item in enumerate(value):
            yield from _check(items, item, path + (index,))


def _object(schema, value: dict, path: Path, field: str):
    for name in schema.get("required") or ():
        if value.get(name) is None:
            yield path, f"{format_path(path + (name,))}: Required value"
    props = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        yield path, f"{field}: Too many: {len(value)}: must have at most {schema['maxProperties']} items"
    if "minProperties" in schema and len(value) < schema["minProperties"]:
        yield path, f"{field}: Invalid value: {len(value)}: must have at least {schema['minProperties']} items"
    preserve = schema.get("x-kubernetes-preserve-unknown-fields") or schema.get("x-kubernetes-embedded-resource")
    for name, item in value.items():
        child = path + (name,)
        if name in props:
            yield from _check(props[name], item, child)
        elif isinstance(extra, dict):
            yield from _check(extra, item, child)
        elif extra is False or (extra is None and not preserve):
            known = ", ".join(sorted(props)) or "none"
            yield child, f'unknown field "{format_path(child)}" (kubectl apply refuses it; known fields here: {known})'
