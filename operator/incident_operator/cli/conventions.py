"""What every command line of the project does the same way (incidentctl, kubectl incident,
incident-operator), so a person or a script can rely on it:

- ``--version``: the package version and, when known, the git revision it was built from;
- usage mistakes are one line on stderr and exit status 2 (argparse's default prints the whole
  usage block first);
- every other error is one line on stderr and a non-zero status, never a traceback (``*_DEBUG=1``
  in the environment re-raises, for developers): 1 for findings and refusals, 2 for usage and I/O;
- a closed pipe (``incidentctl test --trace | head``) ends the command quietly, as the SIGPIPE
  default of C tools does;
- colour only on a terminal and never with ``NO_COLOR`` (https://no-color.org) or ``TERM=dumb``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Callable, TextIO

DISTRIBUTION = "incident-operator"
# A build (the container image, a wheel built in CI) may record the revision here; otherwise it is
# read from git when the package runs from a checkout, else from $INCIDENT_OPERATOR_REVISION.
REVISION_FILE = Path(__file__).resolve().parents[1] / "REVISION"

EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_SIGPIPE = 141  # 128 + SIGPIPE, what a shell reports for a C tool cut off by `head`
EXIT_INTERRUPTED = 130


@lru_cache(maxsize=1)
def revision() -> str | None:
    env = os.environ.get("INCIDENT_OPERATOR_REVISION")
    if env:
        return env.strip()[:40]
    try:
        text = REVISION_FILE.read_text().strip()
        if text:
            return text[:40]
    except OSError:
        pass
    # Only a source checkout (operator/incident_operator/ under the repository root) asks git: an
    # installed copy inside some other repository (a venv in a project) must not report its revision.
    checkout = Path(__file__).resolve().parents[3]
    if not (checkout / ".git").exists() or not (checkout / "operator" / "incident_operator").is_dir():
        return None
    try:
        out = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=2)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"


def version_text(prog: str) -> str:
    rev = revision()
    return f"{prog} {version()}" + (f" (revision {rev})" if rev else "")


class _Version(argparse.Action):
    """Like argparse's "version" action, but looks the revision up only when asked."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, prog: str = "", help=None):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)
        self.prog = prog

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_text(self.prog))
        parser.exit(0)


def add_version(parser: argparse.ArgumentParser, prog: str) -> None:
    parser.add_argument("--version", action=_Version, prog=prog,
                        help="print the version (and git revision, when known) and exit")


class OneLineErrors(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line: what is wrong and where to look."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def use_colour(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:500] if text else type(error).__name__


def guarded(prog: str, run: Callable[[], int], debug_env: str = "INCIDENTCTL_DEBUG") -> int:
    """Runs a command's body with the conventions above; returns its exit status."""
    try:
        return int(run() or 0)
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_SIGPIPE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except SystemExit:
        raise
    except OSError as error:  # files: missing, unreadable, not writable
        if os.environ.get(debug_env):
            raise
        where = f"{error.filename}: " if getattr(error, "filename", None) else ""
        print(f"{prog}: error: {where}{error.strerror or one_line(error)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:  # noqa: BLE001 - never a traceback for a person at a terminal
        if os.environ.get(debug_env):
            raise
        print(f"{prog}: error: {describe(error)}", file=sys.stderr)
        return EXIT_FINDINGS


def describe(error: BaseException) -> str:
    """One line for an error from the Kubernetes client or the network, else its text."""
    text = one_line(error)
    if "Max retries exceeded" in text or "Connection refused" in text or "NewConnectionError" in text:
        import re

        host = re.search(r"host='([^']+)', port=(\d+)", text)
        where = f" at {host.group(1)}:{host.group(2)}" if host else ""
        return f"cannot reach the Kubernetes API server{where}: connection refused"
    status = getattr(error, "status", None)
    if status is not None and hasattr(error, "reason"):
        return f"the API server answered HTTP {status} {getattr(error, 'reason', '')}".strip()
    return f"{type(error).__name__}: {text}"


def _silence_stdout() -> None:
    # Python flushes stdout at exit, which would raise BrokenPipeError again: point it at devnull.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
