"""``incidentctl test FILE...``: run DetectionRule unit tests (promtool-style; see docs/rule-tests.md).

Each test file names DetectionRule files (``rule_files``) and lists tests: the values the rule's
query returns per group at consecutive evaluations (``input_series``), optionally what people do
(``incident_changes``), and the incidents expected at given times (``expected_incidents``). The
values are replayed through the operator's own detection code, evaluation by evaluation.

Exit status: 0 when every test passes, 1 when one fails, 2 when a file is malformed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("test", help="run DetectionRule unit tests (promtool-style, see docs/rule-tests.md)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="rule test files (YAML)")
    parser.add_argument("--trace", action="store_true",
                        help="print every evaluation (value, threshold, phase, actions) of each test")
    parser.add_argument("-k", "--match", metavar="TEXT", help="run only tests whose name contains TEXT")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..gitops.ruletest import TestFileError, format_trace, load_tests, run_test

    passed = failed = 0
    malformed = False
    for path in args.files:
        try:
            tests = load_tests(path)
        except TestFileError as error:
            print(f"ERROR {error}", file=sys.stderr)
            malformed = True
            continue
        for test in tests:
            if args.match and args.match not in test.name:
                continue
            result = run_test(test)
            if result.passed:
                passed += 1
                print(f"PASS  {path}: {test.name}")
            else:
                failed += 1
                print(f"FAIL  {path}: {test.name} ({test.where})")
                for failure in result.failures:
                    print(f"        {failure}")
            if args.trace:
                for line in format_trace(result):
                    print(line)
    print(f"{passed} passed, {failed} failed" + (", some files could not be read" if malformed else ""))
    if malformed:
        return 2
    return 1 if failed else 0
