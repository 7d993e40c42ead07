"""The operator runs without the optional dependencies; a CLI that needs one says which extra to install.

`make wheel-check` does the full check (a fresh virtualenv from the built wheel); this is the part
that runs with the unit tests: every module of the package imports with the `cli` and `test` extras'
packages blocked.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXTRA_ONLY = ("rich", "celpy", "cryptography", "pytest", "hypothesis", "jsonschema")

IMPORT_ALL_WITHOUT = """
import importlib, pkgutil, sys
for blocked in sys.argv[1:]:
    sys.modules[blocked] = None  # `import blocked` now raises ModuleNotFoundError
import incident_operator
names = [m.name for m in pkgutil.walk_packages(incident_operator.__path__, "incident_operator.")]
for name in names:
    importlib.import_module(name)
print(len(names))
"""


def test_every_module_imports_without_the_extras():
    result = subprocess.run([sys.executable, "-c", IMPORT_ALL_WITHOUT, *EXTRA_ONLY], capture_output=True,
                            text=True, timeout=120, cwd=REPO / "operator")
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 50


def test_runtime_dependencies_hold_no_cli_or_test_package():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = {dep.split(">")[0].split("=")[0].strip().lower() for dep in project["dependencies"]}
    assert {"kopf", "kubernetes", "promql-parser", "aiohttp", "apprise"} <= runtime
    assert not runtime & {"rich", "cel-python", "cryptography", "pytest"}
    cli = {dep.split(">")[0].strip() for dep in project["optional-dependencies"]["cli"]}
    assert cli == {"rich", "cel-python"}


def test_lint_without_cel_python_names_the_extra(monkeypatch):
    from incident_operator.gitops import crds

    monkeypatch.setitem(sys.modules, "celpy", None)
    crds._program.cache_clear()
    schema = {"type": "object", "x-kubernetes-validations": [{"rule": "self.a == 1", "message": "a is 1"}],
              "properties": {"a": {"type": "integer"}}}
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'incident-operator\[cli\]'"):
        crds.cel_violations(schema, {"a": 2})
    crds._program.cache_clear()
