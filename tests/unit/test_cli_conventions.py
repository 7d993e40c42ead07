"""Every command line, good and bad input: exit codes, one-line errors (never a traceback), output formats.

Conventions (operator/incident_operator/cli/conventions.py): 0 fine, 1 findings or refusals, 2 usage and
I/O errors; errors are one line on stderr; -o is the output format; --version everywhere. What needs an
API server is in tests/integration/test_kubectl_plugin.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "manifests" / "examples"
INCIDENT = EXAMPLES / "incident-login.yaml"
RULE = EXAMPLES / "detectionrule-login.yaml"
RULE_TEST = EXAMPLES / "detectionrule-login_test.yaml"
BAD_RULE = REPO / "tests" / "data" / "bad-rules" / "for-longer-than-cooldown.yaml"

INCIDENTCTL = [sys.executable, "-m", "incident_operator.cli.incidentctl"]
PLUGIN = [sys.executable, "-m", "incident_operator.cli.kubectl_incident"]
OPERATOR = [sys.executable, "-m", "incident_operator"]


def run(argv, **kwargs) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("INCIDENTCTL_DEBUG", "KUBECTL_INCIDENT_DEBUG")}
    env.update(kwargs.pop("env", {}))
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=120, env=env, cwd=kwargs.pop("cwd", REPO), **kwargs
    )


@pytest.fixture(scope="module")
def dead_kubeconfig(tmp_path_factory) -> Path:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = tmp_path_factory.mktemp("kube") / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "gone",
                "clusters": [{"name": "gone", "cluster": {"server": f"https://127.0.0.1:{port}"}}],
                "users": [{"name": "u", "user": {"token": "x"}}],
                "contexts": [
                    {"name": "gone", "context": {"cluster": "gone", "user": "u", "namespace": "default"}}
                ],
            }
        )
    )
    return path


@pytest.fixture(scope="module")
def failing_rule_test(tmp_path_factory) -> Path:
    """A rule test that cannot pass: it expects an incident while the series stays flat."""
    path = tmp_path_factory.mktemp("ruletest") / "failing_test.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "rule_files": [str(RULE)],
                "tests": [
                    {
                        "name": "expects what never happens",
                        "input_series": [{"series": '{topic="login"}', "values": "0x20"}],
                        "expected_incidents": [{"at": "5m", "labels": {"topic": "login"}, "priority": "P1"}],
                    }
                ],
            }
        )
    )
    return path


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


# (argv, exit status, what stdout/stderr must show): one row per subcommand and kind of input.
GOOD = [
    (INCIDENTCTL + ["--version"], "incidentctl 0."),
    (PLUGIN + ["--version"], "kubectl incident 0."),
    (OPERATOR + ["--version"], "incident-operator 0."),
    (INCIDENTCTL + ["lint", str(EXAMPLES)], ""),
    (INCIDENTCTL + ["lint", "--quiet", str(RULE)], ""),
    (INCIDENTCTL + ["test", str(RULE_TEST)], "passed, 0 failed"),
    (INCIDENTCTL + ["draft", "-f", str(INCIDENT)], "log in"),
    (INCIDENTCTL + ["draft", "--kind", "resolution", "-f", str(INCIDENT), "login-failures"], ""),
    (INCIDENTCTL + ["draft", "login-failures", "-f", str(INCIDENT), "-o", "statuspage"], '"incident"'),
    (INCIDENTCTL + ["postmortem", "-f", str(INCIDENT)], "log in"),
    (INCIDENTCTL + ["draft", "--help"], "--kind"),
    (PLUGIN + ["draft", "--kind", "resolution", "-f", str(INCIDENT), "login-failures"], ""),
    (PLUGIN + ["-n", "default", "draft", "-f", str(INCIDENT)], "log in"),
    (PLUGIN + ["draft", "--help"], "--kind"),
    (PLUGIN + ["postmortem", "-f", str(INCIDENT), "-o", "markdown"], "log in"),
]


@pytest.mark.parametrize(
    "argv,shows", GOOD, ids=[" ".join(Path(a).name for a in argv[2:]) for argv, _ in GOOD]
)
def test_good_input_exits_0(argv, shows):
    result = run(argv)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert shows in result.stdout


def bad_cases(dead: Path, failing: Path, tmp: Path):
    empty = tmp / "empty"
    empty.mkdir(exist_ok=True)
    return [
        # usage mistakes: 2
        (INCIDENTCTL, 2, "incidentctl: error: unknown command 'bogus'", ["bogus"]),
        (INCIDENTCTL, 2, "the following arguments are required: PATH", ["lint"]),
        (INCIDENTCTL, 2, "invalid choice: 'xml'", ["lint", "--format", "xml", str(RULE)]),
        (INCIDENTCTL, 2, "the following arguments are required: FILE", ["test"]),
        (INCIDENTCTL, 2, "the following arguments are required: --out", ["schema"]),
        (INCIDENTCTL, 2, "invalid choice: 'haiku'", ["draft", "--kind", "haiku", "x"]),
        (INCIDENTCTL, 2, "invalid choice: 'json'", ["postmortem", "x", "-o", "json"]),
        (INCIDENTCTL, 2, "name the incident", ["postmortem", "--kubeconfig", str(dead)]),
        (INCIDENTCTL, 2, "one of the arguments --series --nab is required", ["backtest"]),
        (PLUGIN, 2, "invalid choice: 'bogus'", ["list", "-o", "bogus"]),
        (PLUGIN, 2, "the following arguments are required: name", ["ack"]),
        (PLUGIN, 2, "invalid choice: 'json'", ["postmortem", "x", "-o", "json"]),
        (OPERATOR, 2, "unrecognized arguments: --bogus", ["--bogus"]),
        # I/O: 2
        (INCIDENTCTL, 2, "missing.yaml: no such file or directory", ["lint", str(tmp / "missing.yaml")]),
        (INCIDENTCTL, 2, "no YAML files", ["lint", str(empty)]),
        (INCIDENTCTL, 2, "missing_test.yaml", ["test", str(tmp / "missing_test.yaml")]),
        (INCIDENTCTL, 2, "cannot read", ["draft", "-f", str(tmp / "missing.yaml")]),
        (INCIDENTCTL, 2, "cannot read", ["postmortem", "-f", str(tmp / "missing.yaml")]),
        (INCIDENTCTL, 2, "error:", ["backtest", "--series", str(tmp / "missing.csv")]),
        (INCIDENTCTL, 2, "error:", ["schema", "--out", "/proc/no-such-dir/schemas"]),
        # findings and refusals: 1
        (INCIDENTCTL, 1, "", ["lint", "--quiet", str(BAD_RULE)]),
        (INCIDENTCTL, 1, "", ["test", str(failing)]),
        (INCIDENTCTL, 1, "cannot reach the Kubernetes API server", ["draft", "x", "--kubeconfig", str(dead)]),
        (
            INCIDENTCTL,
            1,
            "cannot reach the Kubernetes API server",
            ["postmortem", "x", "--kubeconfig", str(dead)],
        ),
        (PLUGIN, 1, "cannot reach the Kubernetes API server", ["list", "--kubeconfig", str(dead)]),
        (
            PLUGIN,
            1,
            "cannot reach the Kubernetes API server",
            ["draft", "-n", "default", "x", "--kubeconfig", str(dead)],
        ),
        (PLUGIN, 1, "cannot reach the Kubernetes API server", ["timeline", "x", "--kubeconfig", str(dead)]),
    ]


def test_bad_input_is_one_line_and_the_right_exit_status(dead_kubeconfig, failing_rule_test, tmp_path):
    failures = []
    for program, status, message, argv in bad_cases(dead_kubeconfig, failing_rule_test, tmp_path):
        result = run(program + argv)
        where = " ".join(argv)
        if result.returncode != status:
            failures.append(f"{where}: exit {result.returncode}, want {status}: {result.stderr[-300:]}")
            continue
        if "Traceback" in result.stderr:
            failures.append(f"{where}: traceback")
            continue
        if message:
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            if len(lines) != 1 or message not in lines[0]:
                failures.append(f"{where}: want one line with {message!r}, got {result.stderr!r}")
    assert failures == []


def test_postmortem_writes_a_file_only_with_file(tmp_path):
    result = run(INCIDENTCTL + ["postmortem", "-f", str(INCIDENT), "-o", "json"], cwd=tmp_path)
    assert result.returncode == 2 and not (tmp_path / "json").exists()
    out = tmp_path / "review.md"
    result = run(INCIDENTCTL + ["postmortem", "--file", str(out), "-f", str(INCIDENT)])
    assert result.returncode == 0 and result.stdout == ""
    assert out.read_text().startswith("#")


def test_version_names_the_package_version_and_revision():
    from importlib.metadata import version

    from incident_operator.cli import conventions

    result = run(INCIDENTCTL + ["--version"], env={"INCIDENT_OPERATOR_REVISION": "abc123def"})
    assert result.stdout.strip() == f"incidentctl {version('incident-operator')} (revision abc123def)"
    conventions.revision.cache_clear()
    assert conventions.version_text("x").startswith(f"x {version('incident-operator')}")


def test_lint_formats_carry_file_line_and_column(tmp_path):
    text = run(INCIDENTCTL + ["lint", "-q", str(BAD_RULE)])
    assert text.returncode == 1
    assert text.stdout.startswith(f"{BAD_RULE}:9:3: DetectionRule/for-longer-than-cooldown: spec.for (15m)")

    as_json = json.loads(run(INCIDENTCTL + ["lint", "--format", "json", str(BAD_RULE)]).stdout)
    assert as_json[0] | {"message": ""} == {
        "file": str(BAD_RULE),
        "line": 9,
        "column": 3,
        "severity": "error",
        "kind": "DetectionRule",
        "name": "for-longer-than-cooldown",
        "message": "",
    }

    github = run(INCIDENTCTL + ["lint", "-o", "github", str(BAD_RULE)]).stdout.splitlines()
    assert github[0].startswith(
        f"::error file={BAD_RULE},line=9,col=3,title=DetectionRule/for-longer-than-cooldown::"
        "spec.for (15m) is longer"
    )

    sarif = json.loads(run(INCIDENTCTL + ["lint", "--format", "sarif", str(BAD_RULE), str(EXAMPLES)]).stdout)
    assert sarif["version"] == "2.1.0" and sarif["$schema"].endswith("sarif-2.1.0.json")
    [run_] = sarif["runs"]
    assert run_["tool"]["driver"]["name"] == "incidentctl lint"
    [result] = run_["results"]
    assert (
        result["level"] == "error"
        and result["ruleId"] == run_["tool"]["driver"]["rules"][result["ruleIndex"]]["id"]
    )
    assert result["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": str(BAD_RULE)},
        "region": {"startLine": 9, "startColumn": 3},
    }
    assert result["message"]["text"].startswith("DetectionRule/for-longer-than-cooldown: spec.for (15m)")


def test_sarif_validates_against_the_2_1_0_shape():
    """The parts of the SARIF 2.1.0 schema that GitHub code scanning requires, checked with jsonschema."""
    import jsonschema

    schema = {
        "type": "object",
        "required": ["version", "runs"],
        "properties": {
            "version": {"const": "2.1.0"},
            "runs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["tool", "results"],
                    "properties": {
                        "tool": {
                            "type": "object",
                            "required": ["driver"],
                            "properties": {"driver": {"type": "object", "required": ["name"]}},
                        },
                        "results": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["message", "locations"],
                                "properties": {
                                    "level": {"enum": ["none", "note", "warning", "error"]},
                                    "message": {"type": "object", "required": ["text"]},
                                    "locations": {
                                        "type": "array",
                                        "minItems": 1,
                                        "items": {
                                            "type": "object",
                                            "properties": {
                                                "physicalLocation": {
                                                    "type": "object",
                                                    "required": ["artifactLocation", "region"],
                                                    "properties": {
                                                        "region": {
                                                            "type": "object",
                                                            "required": ["startLine", "startColumn"],
                                                            "properties": {
                                                                "startLine": {
                                                                    "type": "integer",
                                                                    "minimum": 1,
                                                                },
                                                                "startColumn": {
                                                                    "type": "integer",
                                                                    "minimum": 1,
                                                                },
                                                            },
                                                        }
                                                    },
                                                }
                                            },
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    }
    warning = REPO / "tests" / "data" / "bad-rules" / "rate-with-count-threshold.yaml"
    document = json.loads(
        run(INCIDENTCTL + ["lint", "--format", "sarif", str(BAD_RULE), str(warning)]).stdout
    )
    jsonschema.validate(document, schema)
    assert {r["level"] for r in document["runs"][0]["results"]} == {"error", "warning"}


def test_rule_tests_junit_report(failing_rule_test, tmp_path):
    report = tmp_path / "junit.xml"
    result = run(INCIDENTCTL + ["test", str(RULE_TEST), str(failing_rule_test), "--junit", str(report)])
    assert result.returncode == 1
    root = ET.parse(report).getroot()
    assert root.tag == "testsuites" and int(root.get("failures")) == 1
    cases = root.findall("testsuite/testcase")
    assert int(root.get("tests")) == len(cases) > 1
    failed = [c for c in cases if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["expects what never happens"]
    assert failed[0].find("failure").get("message")


def test_a_closed_pipe_ends_quietly(tmp_path):
    """`incidentctl test --trace | head -1`: no BrokenPipeError, the SIGPIPE status."""
    long = tmp_path / "long_test.yaml"  # a trace far longer than a pipe's buffer
    long.write_text(
        yaml.safe_dump(
            {
                "rule_files": [str(RULE)],
                "tests": [
                    {
                        "name": "quiet",
                        "input_series": [{"series": '{topic="login"}', "values": "0x4000"}],
                        "expected_incidents": [{"at": "1m", "incidents": []}],
                    }
                ],
            }
        )
    )
    process = subprocess.Popen(
        INCIDENTCTL + ["test", "--trace", str(long)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO
    )
    process.stdout.readline()
    process.stdout.close()  # as `head -1` does
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141
    assert stderr == ""


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch):
    from incident_operator.cli.conventions import use_colour

    class Tty:
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert use_colour(Tty()) is True
    with open(os.devnull, "w") as devnull:
        assert use_colour(devnull) is False
    monkeypatch.setenv("NO_COLOR", "1")
    assert use_colour(Tty()) is False
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("TERM", "dumb")
    assert use_colour(Tty()) is False


def test_make_help_prints_no_escape_codes_into_a_pipe():
    result = run(["make", "--no-print-directory", "help"])
    assert result.returncode == 0
    assert "test " in result.stdout and "\x1b[" not in result.stdout


def test_make_help_colours_a_terminal_unless_no_color():
    import pty

    def through_pty(env):
        leader, follower = pty.openpty()
        try:
            subprocess.run(
                ["make", "--no-print-directory", "help"],
                stdout=follower,
                stderr=subprocess.DEVNULL,
                cwd=REPO,
                env=env,
                timeout=60,
                check=True,
            )
            os.close(follower)
            chunks = []
            while True:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks).decode()
        finally:
            os.close(leader)

    plain_env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    assert "\x1b[36m" in through_pty({**plain_env, "TERM": "xterm"})
    assert "\x1b[" not in through_pty({**plain_env, "NO_COLOR": "1"})


def test_backtest_prints_one_line_per_series_when_not_a_terminal(tmp_path):
    series = tmp_path / "nab" / "data" / "cat" / "flat.csv"
    series.parent.mkdir(parents=True)
    series.write_text("timestamp,value\n" + "".join(f"2026-01-01 00:{m:02d}:00,1\n" for m in range(30)))
    result = run(INCIDENTCTL + ["backtest", "--nab", str(tmp_path / "nab"), "--out", str(tmp_path / "out")])
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("cat/flat.csv: 0 alarm rows")
    assert lines[1] == f"1 series replayed into {tmp_path / 'out'}"
    assert "\x1b[" not in result.stderr
