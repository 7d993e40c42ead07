"""The import contracts of .importlinter hold for the package, and each kind fails when broken.

Each case copies the package into a temporary folder, adds one import that breaks one contract and
runs ``lint-imports`` with the repository's own configuration against the copy.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "operator" / "incident_operator"
CONFIG = REPO / ".importlinter"


def lint_imports_binary() -> str:
    found = Path(sys.executable).parent / "lint-imports"
    if found.exists():
        return str(found)
    which = shutil.which("lint-imports")
    assert which, "lint-imports not found: install the lint extra (`make venv` does)"
    return which


def contracts() -> dict[str, str]:
    """contract id -> its name, from the repository's configuration."""
    parser = configparser.ConfigParser()
    parser.read(CONFIG)
    prefix = "importlinter:contract:"
    return {section[len(prefix):]: parser[section]["name"] for section in parser.sections()
            if section.startswith(prefix)}


def lint(root: Path, *contract_ids: str) -> subprocess.CompletedProcess:
    """lint-imports on the package under ``root`` (first on the path, before any installed copy)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(REPO)])}
    args = [arg for cid in contract_ids for arg in ("--contract", cid)]
    return subprocess.run([lint_imports_binary(), "--no-cache", *args, str(CONFIG)], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def package_copy(tmp_path) -> Path:
    shutil.copytree(PACKAGE, tmp_path / "incident_operator",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return tmp_path


def add_import(root: Path, module: str, statement: str) -> None:
    path = root / Path(*module.split(".")).with_suffix(".py")
    assert path.exists(), path
    path.write_text(path.read_text() + f"\n{statement}  # added by test_import_contracts\n")


def test_the_package_keeps_every_contract(package_copy):
    result = lint(package_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(contracts())} kept, 0 broken." in result.stdout, result.stdout


# module of the copy, the import added to it, the contract it breaks
BREAKS = [
    ("incident_operator.domain.incident.lifecycle", "import kopf", "pure-core"),
    ("incident_operator.domain.common.timeutil", "import aiohttp", "pure-core"),
    ("incident_operator.domain.detection.rules", "from incident_operator.services import detection",
     "layers"),
    ("incident_operator.adapters.kube", "from incident_operator import metrics", "layers"),
    ("incident_operator.handlers.incidents", "import kubernetes", "io-in-adapters"),
    ("incident_operator.services.notifier", "import apprise", "io-in-adapters"),
    ("incident_operator.services.alerts", "from incident_operator.services import detection",
     "independent-intake"),
    ("incident_operator.services.incident_book", "from incident_operator.cli import common",
     "operator-without-user-tools"),
    ("incident_operator.gitops.lint", "from incident_operator.cli import common", "user-tools"),
    ("incident_operator.cli.lint", "import tools.devenv.processes", "no-workshop"),
]


@pytest.mark.parametrize("module, statement, contract", BREAKS,
                         ids=[f"{c}:{m.rsplit('.', 1)[-1]}" for m, _, c in BREAKS])
def test_a_forbidden_import_breaks_its_contract(package_copy, module, statement, contract):
    assert contract in contracts()
    before = lint(package_copy, contract)
    assert before.returncode == 0, before.stdout + before.stderr
    add_import(package_copy, module, statement)
    after = lint(package_copy, contract)
    assert after.returncode != 0, after.stdout
    assert "Contracts: 0 kept, 1 broken." in after.stdout, after.stdout
    assert module in after.stdout, after.stdout
