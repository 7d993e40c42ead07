"""incidentctl: the subcommand dispatcher, and draft/postmortem on an Incident read from a file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from incident_operator.cli import incidentctl

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "manifests" / "examples" / "incident-login.yaml"


def test_help_lists_the_subcommands(capsys):
    with pytest.raises(SystemExit):
        incidentctl.main(["--help"])
    out = capsys.readouterr().out
    for name in ("draft", "postmortem"):
        assert name in out


def test_unknown_subcommand_is_refused(capsys):
    with pytest.raises(SystemExit) as exited:
        incidentctl.main(["nope"])
    assert exited.value.code == 2 and "unknown command 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["draft", "postmortem"])
def test_subcommand_modules_register_with_the_dispatcher(name):
    import importlib

    module = importlib.import_module(incidentctl.SUBCOMMANDS[name][0])
    assert hasattr(module, "register")


def test_draft_from_a_file(capsys):
    assert incidentctl.main(["draft", "login-failures", "-f", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("**Investigating** - Customers cannot log in")
    assert "Log in with e-mail and password instead of SSO." in out


def test_draft_statuspage_output_and_resolution_kind(capsys, tmp_path):
    body = yaml.safe_load(EXAMPLE.read_text())
    body["spec"].update(state="Resolved", owner="ann", resolution="Restarted the SSO proxy.")
    path = tmp_path / "inc.yaml"
    path.write_text(yaml.safe_dump(body))
    assert incidentctl.main(["draft", "-f", str(path), "--kind", "resolution"]) == 0
    assert "Restarted the SSO proxy." in capsys.readouterr().out
    assert incidentctl.main(["draft", "-f", str(path), "-o", "statuspage"]) == 0
    assert '"status": "resolved"' in capsys.readouterr().out


def test_draft_with_a_broken_template_dir_reports_and_falls_back(capsys, tmp_path):
    (tmp_path / "status-update.md.j2").write_text("{{ ''.__class__ }}")
    assert incidentctl.main(["draft", "-f", str(EXAMPLE), "--templates-dir", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith("**Investigating**")
    assert "refused by the template sandbox" in captured.err


def test_postmortem_from_a_file(capsys, tmp_path):
    out_file = tmp_path / "pm.md"
    assert incidentctl.main(["postmortem", "-f", str(EXAMPLE), "--file", str(out_file)]) == 0
    document = out_file.read_text()
    assert document.startswith("# Post-incident review: Customers cannot log in")
    assert "| Priority / severity | P2 / High |" in document


def test_missing_file_is_a_clear_error(capsys, tmp_path):
    # An I/O error (2), not a finding (1).
    assert incidentctl.main(["postmortem", "x", "-f", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err
