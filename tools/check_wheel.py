"""``make wheel-check``: the wheel holds the operator and the user CLIs only, and works without extras.

Builds the wheel, refuses it if it ships the workshop (``tools/``, ``devenv``, the demo, the CRD sync),
installs it into a fresh virtualenv WITHOUT extras (from PyPI, like a user would), then runs
``incident-operator --help`` and imports every module of the package from outside the checkout.
Prints what it did; exits non-zero on the first failure.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import venv
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Never in the wheel: the workshop. Never installed by `pip install .`: the extras' packages.
WORKSHOP_PATHS = ("tools/", "incident_operator/devenv/", "incident_operator/cli/demo.py",
                  "incident_operator/cli/sync_crds.py", "tests/")
EXTRA_ONLY_MODULES = ("rich", "celpy", "cryptography", "pytest")

IMPORT_EVERY_MODULE = """
import importlib, pkgutil, sys
import incident_operator
names = [m.name for m in pkgutil.walk_packages(incident_operator.__path__, "incident_operator.")]
for name in names:
    importlib.import_module(name)
missing = []
for module in sys.argv[1:]:
    try:
        importlib.import_module(module)
    except ModuleNotFoundError:
        missing.append(module)
extras = sorted(set(sys.argv[1:]) - set(missing))
assert not extras, f"installed without extras, yet present: {extras}"
assert "tools" not in sys.modules
print(f"imported {len(names)} modules of incident_operator from {incident_operator.__path__[0]}")
"""


def run(*argv: str | Path, cwd: Path | None = None) -> str:
    result = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"FAILED: {' '.join(map(str, argv))}\n{result.stdout}\n{result.stderr}")
    return result.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.check_wheel", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="incident-wheel-"))
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", work / "dist", REPO)
    wheel = next((work / "dist").glob("incident_operator-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(n for n in names if n.startswith(WORKSHOP_PATHS))
    if shipped:
        raise SystemExit(f"FAILED: the wheel ships the workshop: {shipped}")
    print(f"{wheel.name}: {len(names)} files, no workshop files")
    venv.create(work / "venv", with_pip=True)
    python = work / "venv" / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", wheel)
    print("installed without extras into a fresh virtualenv")
    help_text = run(work / "venv" / "bin" / "incident-operator", "--help", cwd=work)
    print(f"incident-operator --help: {help_text.splitlines()[0]}")
    print(run(python, "-c", IMPORT_EVERY_MODULE, *EXTRA_ONLY_MODULES, cwd=work).strip())
    if args.keep:
        print(f"kept {work}")
    else:
        subprocess.run(["rm", "-rf", str(work)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
