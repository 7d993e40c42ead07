"""kubectl incident: what the list shows (the integration test runs the plugin against a real API server)."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

import pytest
from rich.console import Console

from incident_operator.cli import kubectl_incident as plugin

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)


def incident(name, state="Triggered", deadline=None, level=0, priority="P2", owner=None, age=timedelta(minutes=5)):
    return {
        "metadata": {"name": name, "namespace": "support",
                     "creationTimestamp": (NOW - age).strftime("%Y-%m-%dT%H:%M:%SZ")},
        "spec": {"title": f"About {name}", "state": state, "priority": priority, **({"owner": owner} if owner else {})},
        "status": {"priority": priority, **({"responseDeadline": deadline.isoformat()} if deadline else {}),
                   "escalation": {"level": level}},
    }


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (45, "45s"), (119, "119s"), (180, "3m"), (3600, "1h"),
                                           (3600 + 300, "1h5m"), (36000 + 300, "10h"), (3 * 86400 + 7200, "3d2h")])
def test_short_durations_read_like_kubectl(seconds, text):
    assert plugin.short_duration(seconds) == text


def test_response_column():
    assert plugin.response_text(incident("a", deadline=NOW + timedelta(minutes=27)), NOW)[0] == "27m left"
    assert plugin.response_text(incident("b", deadline=NOW - timedelta(minutes=3)), NOW)[0] == "breached 3m ago"
    assert plugin.response_text(incident("c", state="Acknowledged", deadline=NOW - timedelta(hours=1)), NOW)[0] == "—"
    assert plugin.response_text(incident("d"), NOW)[0] == "—"  # no deadline computed yet


def test_list_is_most_urgent_first_with_every_column():
    items = [
        incident("closed-one", state="Closed", priority="P1", owner="ann"),
        incident("p3", priority="P3", deadline=NOW + timedelta(hours=1)),
        incident("p1", priority="P1", deadline=NOW - timedelta(minutes=3), level=2),
    ]
    out = io.StringIO()
    Console(file=out, width=200).print(plugin.render_list(items, NOW, all_namespaces=True))
    header, *rows = out.getvalue().splitlines()
    assert header.split() == ["NAMESPACE", "NAME", "PRIORITY", "STATE", "OWNER", "RESPONSE", "LEVEL", "AGE", "TITLE"]
    assert [r.split()[1] for r in rows] == ["p1", "p3", "closed-one"]
    assert rows[0].split()[2:] == ["P1", "Triggered", "—", "breached", "3m", "ago", "2", "5m", "About", "p1"]
    assert rows[1].split()[5:8] == ["1h", "left", "—"]


def test_usage_mistakes_are_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        plugin.main(["ack"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == "error: the following arguments are required: name (see 'kubectl incident ack -h')\n"
