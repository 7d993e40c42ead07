"""Text people read (domain/common/text.py): bidi, zero-width and control characters are refused
with a sentence naming them, or stripped from what the operator renders itself."""

from __future__ import annotations

from datetime import datetime, timezone
import re
from pathlib import Path

import pytest
import yaml

from incident_operator.cli import kubectl_incident as plugin
from incident_operator.domain.common import text
from incident_operator.domain.common.sandbox import DOCUMENT, RULE_TEXT, render
from incident_operator.domain.notify import handoff

REPO = Path(__file__).resolve().parents[2]
SPOOF = "Login OK \u202egnp.exe"
UNSAFE = [
    "\u202a",
    "\u202b",
    "\u202c",
    "\u202d",
    "\u202e",
    "\u2066",
    "\u2067",
    "\u2068",
    "\u2069",
    "\u200e",
    "\u200f",
    "\u061c",
    "\u200b",
    "\u200c",
    "\u200d",
    "\u2060",
    "\ufeff",
    "\x00",
    "\x07",
    "\x1b",
    "\x7f",
    "\x85",
]


@pytest.mark.parametrize("char", UNSAFE)
def test_every_listed_character_is_unsafe_in_both_forms(char):
    assert text.unsafe_characters(f"a{char}b") == [f"U+{ord(char):04X}"]
    assert text.unsafe_characters(f"a{char}b", multiline=True) == [f"U+{ord(char):04X}"]
    assert text.strip_unsafe(f"a{char}b") == "ab"


def test_line_breaks_are_fine_in_descriptions_not_in_titles():
    assert text.unsafe_characters("one\ntwo\tthree\r\n", multiline=True) == []
    assert text.unsafe_characters("one\ntwo") == ["U+000A"]
    assert text.strip_unsafe("one\n two\tthree") == "one  two three"
    assert text.strip_unsafe("one\ntwo", multiline=True) == "one\ntwo"


def test_ordinary_unicode_is_untouched():
    for ok in ("Échec de connexion", "ログインできない", "تسجيل الدخول معطل", "Login 🔥 down", "a–b “c”"):
        assert text.unsafe_characters(ok) == [] and text.strip_unsafe(ok) == ok


def test_refusal_names_the_characters_and_the_field():
    message = text.refusal(SPOOF + "\u200b", "spec.title")
    assert message.startswith(
        "spec.title contains invisible or direction-changing characters (U+202E, U+200B)"
    )
    assert text.refusal("fine", "spec.title") is None


def test_rendered_templates_are_stripped():
    context = {"labels": {"topic": "log\u202ein\u200b"}}
    assert render("Spike of {{ labels.topic }} tickets", context, RULE_TEXT) == "Spike of login tickets"
    assert render("Topic:\n{{ labels.topic }}\n", context, DOCUMENT) == "Topic:\nlogin\n"


def test_the_crd_refuses_the_same_characters_as_the_operator_strips():
    crd = yaml.safe_load((REPO / "crds" / "incidents.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    fields = {
        "title": False,
        "owner": False,
        "commander": False,
        "description": True,
        "workaround": True,
        "resolution": True,
    }
    for field, multiline in fields.items():
        rule = spec[field]["x-kubernetes-validations"][0]["rule"]
        assert rule.startswith("!self.matches(r'[") and rule.endswith("]')"), field
        assert _covered(rule[len("!self.matches(r'") : -2]) == _covered_by(text._pattern(multiline)), field
    summary = spec["customerImpact"]["properties"]["summary"]["x-kubernetes-validations"][0]["rule"]
    assert _covered(summary[len("!self.matches(r'") : -2]) == _covered_by(text.UNSAFE_MULTI_LINE)


def _covered(re2_class: str) -> set[int]:
    """The code points (BMP) an RE2 character class written with \\x{XXXX} matches."""
    return _covered_by(
        re.compile(re.sub(r"\\x\{([0-9A-Fa-f]{4})\}", lambda m: chr(int(m.group(1), 16)), re2_class))
    )


def _covered_by(pattern: re.Pattern[str]) -> set[int]:
    return {c for c in range(0x10000) if pattern.fullmatch(chr(c))}


def test_the_cli_states_when_the_person_acted():
    now = datetime(2026, 3, 2, 10, 20, 30, 500000, tzinfo=timezone.utc)
    spec = plugin.transition_spec("Acknowledged", {"owner": "alice", "resolution": None}, None, now)
    assert spec == {
        "state": "Acknowledged",
        "owner": "alice",
        "stateChange": {"state": "Acknowledged", "at": "2026-03-02T10:20:30Z"},
    }
    earlier = plugin.transition_spec("Resolved", {}, "2026-03-02T10:15:00+01:00", now)
    assert earlier["stateChange"] == {"state": "Resolved", "at": "2026-03-02T09:15:00Z"}
    with pytest.raises(plugin.PluginError, match="--at"):
        plugin.transition_spec("Resolved", {}, "ten minutes ago", now)


def test_a_warning_packet_says_the_time_left():
    incident = {
        "metadata": {"name": "login", "namespace": "support", "uid": "u"},
        "spec": {"title": "Login broken", "priority": "P2"},
        "status": {"priority": "P2", "state": "Triggered", "responseDeadline": "2026-03-02T10:30:00Z"},
    }
    packet = handoff.build_packet(
        incident,
        {"event": "incident.deadline_warning", "key": "warning-0-50", "level": 1},
        datetime(2026, 3, 2, 10, 15, tzinfo=timezone.utc),
        level_name="Primary",
    )
    title, body = handoff.render_message(packet)
    assert title == "[P2] Not yet acknowledged, 15m left: Login broken"
    assert "not yet acknowledged: 15m left to respond (Primary)" in body
    assert handoff.notify_type(packet) == "warning"


def test_alert_annotations_lose_unsafe_characters_before_they_become_an_incident():
    from incident_operator.domain.alerts import alertmanager as dom

    from tests.unit.test_alerts import payload, raw_alert, settings

    alert = raw_alert(severity="critical")
    alert["annotations"] = {
        "summary": "Checkout \u202eKO\u202c is\u200b slow\n",
        "description": "Step 1\nStep\x1b 2\u2066",
    }
    plan = dom.plan_group(dom.parse_notification(payload(alert)), settings())
    assert plan.title == "Checkout KO is slow"
    assert plan.description == "Step 1\nStep 2"
