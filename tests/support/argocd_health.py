"""Runs an Argo CD health check (health.lua) the way Argo CD's own tests do.

Argo CD keeps, beside each ``health.lua``, a ``health_test.yaml``::

    tests:
      - healthStatus: {status: Healthy, message: ...}
        inputPath: testdata/healthy.yaml

and its test loads each input object, runs the script with the object as the global ``obj`` and
compares status and message. Argo CD runs scripts on gopher-lua (Lua 5.1), so this runs them on
Lua 5.1 (PyPI ``lupa``) with the object converted as Argo CD converts it (maps to tables, lists to
1-indexed tables).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def evaluate(script: str, obj: dict[str, Any]) -> dict[str, str]:
    from lupa import lua51

    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(script)
    return {"status": result["status"], "message": result["message"]}


def run_health_tests(script_path: Path, test_file: Path) -> list[tuple[str, dict[str, str], dict[str, str]]]:
    """(inputPath, expected, actual) for every test of ``test_file``, inputs relative to it."""
    script = script_path.read_text()
    results = []
    for case in yaml.safe_load(test_file.read_text())["tests"]:
        obj = yaml.safe_load((test_file.parent / case["inputPath"]).read_text())
        results.append((case["inputPath"], dict(case["healthStatus"]), evaluate(script, obj)))
    return results
