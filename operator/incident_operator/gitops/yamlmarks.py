"""Load multi-document YAML and remember where every field is (1-based lines and columns).

``load_documents(text)`` yields :class:`Document` objects: the plain Python data (as
``yaml.safe_load`` would build it) plus a map from each field's path (a tuple of keys and list
indexes, e.g. ``("spec", "priority", "bands", 1, "minValue")``) to the line of that field.
Duplicate keys, which PyYAML silently accepts but ``kubectl`` refuses, are reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterator

import yaml

Path = tuple[Any, ...]


class YamlError(ValueError):
    def __init__(self, line: int, message: str, column: int = 1):
        super().__init__(message)
        self.line = line
        self.column = column
        self.message = message


@dataclass
class Document:
    data: Any
    line: int  # first line of the document's content
    lines: dict[Path, int] = field(default_factory=dict)
    duplicates: list[tuple[Path, int, int]] = field(default_factory=list)  # (path, line, first line) of repeats
    columns: dict[Path, int] = field(default_factory=dict)  # the column of each field's key (or list item)
    column: int = 1

    def position_of(self, path: Path) -> tuple[int, int]:
        """(line, column) of ``path``, else of its nearest ancestor in the file, else the document's."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path], self.columns.get(path, 1)
            path = path[:-1]
        return self.line, self.column

    def line_of(self, path: Path) -> int:
        """The line of ``path``, else of its nearest ancestor that is in the file, else the document's."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.line


class Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e-6`` as a number, as kubectl and the API server do
    (YAML 1.1, and so PyYAML, wants a dot: ``1.0e-6``)."""


Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"),
                             list("-+0123456789"))


def _record(node: yaml.Node, path: Path, doc: Document, seen: set[int]) -> None:
    if id(node) in seen:  # aliases: record the anchor's lines once
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        keys: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is None or key == "<<":
                continue
            child = path + (key,)
            line = key_node.start_mark.line + 1
            if key in keys:
                doc.duplicates.append((child, line, keys[key]))
            else:
                keys[key] = line
            doc.lines[child] = line
            doc.columns[child] = key_node.start_mark.column + 1
            _record(value_node, child, doc, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = path + (index,)
            doc.lines[child] = item.start_mark.line + 1
            doc.columns[child] = item.start_mark.column + 1
            _record(item, child, doc, seen)


def load_documents(text: str) -> Iterator[Document]:
    """Yields each non-empty document; raises :class:`YamlError` (with a line) on a syntax error."""
    loader = Loader(text)
    try:
        while True:
            try:
                if not loader.check_node():
                    return
                node = loader.get_node()
            except yaml.MarkedYAMLError as error:
                mark = error.problem_mark or error.context_mark
                line = mark.line + 1 if mark else 1
                problem = error.problem or str(error)
                context = f" ({error.context})" if error.context else ""
                raise YamlError(line, f"invalid YAML: {problem}{context}", mark.column + 1 if mark else 1) from None
            except yaml.YAMLError as error:
                raise YamlError(1, f"invalid YAML: {error}") from None
            if node is None:
                continue
            try:
                data = loader.construct_document(node)
            except yaml.YAMLError as error:
                mark = getattr(error, "problem_mark", None)
                raise YamlError(mark.line + 1 if mark else node.start_mark.line + 1,
                                f"invalid YAML: {getattr(error, 'problem', None) or error}") from None
            if data is None:
                continue
            doc = Document(data=data, line=node.start_mark.line + 1, column=node.start_mark.column + 1)
            _record(node, (), doc, set())
            yield doc
    finally:
        loader.dispose()


def format_path(path: Path) -> str:
    """``("spec", "bands", 1, "minValue")`` -> ``spec.bands[1].minValue``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out
