"""``incidentctl test FILE...``: run DetectionRule unit tests (promtool-style; see docs/rule-tests.md).

Each test file names DetectionRule files (``rule_files``) and lists tests: the values the rule's
query returns per group at consecutive evaluations (``input_series``), optionally what people do
(``incident_changes``), and the incidents expected at given times (``expected_incidents``). The
values are replayed through the operator's own detection code, evaluation by evaluation.

Exit status: 0 when every test passes, 1 when one fails, 2 when a file is missing or malformed
(or no test ran). ``--junit FILE`` also writes a JUnit XML report (for CI test tabs).
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
    parser.add_argument("--junit", type=Path, metavar="FILE", help="also write a JUnit XML report to FILE")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..gitops.ruletest import TestFileError, format_trace, load_tests, run_test

    passed = failed = 0
    malformed = False
    cases: list[tuple[str, str, list[str]]] = []  # (file, test name, failures) for --junit
    for path in args.files:
        try:
            tests = load_tests(path)
        except TestFileError as error:
            print(f"incidentctl test: error: {' '.join(str(error).split())}", file=sys.stderr)
            malformed = True
            continue
        for test in tests:
            if args.match and args.match not in test.name:
                continue
            result = run_test(test)
            cases.append((str(path), test.name, [] if result.passed else [str(f) for f in result.failures]))
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
    if args.junit:
        write_junit(args.junit, cases)
    if malformed:
        return 2
    if not cases:
        print("incidentctl test: error: no test ran" + (f" (none matches -k {args.match!r})" if args.match else ""),
              file=sys.stderr)
        return 2
    return 1 if failed else 0


def write_junit(path: Path, cases: list[tuple[str, str, list[str]]]) -> None:
    """JUnit XML as Jenkins, GitLab and the GitHub test-report actions read it: one suite per file."""
    import xml.etree.ElementTree as ET

    root = ET.Element("testsuites", name="incidentctl test", tests=str(len(cases)),
                      failures=str(sum(1 for *_, failures in cases if failures)))
    suites: dict[str, ET.Element] = {}
    for file, name, failures in cases:
        suite = suites.get(file)
        if suite is None:
            suite = suites[file] = ET.SubElement(root, "testsuite", name=file, tests="0", failures="0")
        suite.set("tests", str(int(suite.get("tests")) + 1))
        case = ET.SubElement(suite, "testcase", classname=file, name=name, file=file)
        if failures:
            suite.set("failures", str(int(suite.get("failures")) + 1))
            failure = ET.SubElement(case, "failure", message=failures[0][:500])
            failure.text = "\n".join(failures)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
