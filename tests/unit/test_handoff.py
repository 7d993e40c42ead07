"""The hand-off packet (domain/notify/handoff.py): every field the next responder needs, as JSON and Markdown."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from incident_operator.domain.common.durations import format_age
from incident_operator.domain.notify import handoff

NOW = datetime(2026, 1, 5, 9, 10, tzinfo=timezone.utc)
SIGNAL = {"rule": "support/login-tickets", "query": 'sum(increase(tickets_total{topic="login"}[10m]))',
          "value": 42.0, "baseline": 4.5, "threshold": 15.0, "peak": 51.0, "groupLabels": {"topic": "login"},
          "firstSeen": "2026-01-05T08:58:00Z", "graphURL": "http://prom/graph?x"}


def incident(**status):
    timeline = [{"time": f"2026-01-05T09:0{i}:00Z", "type": "Note", "message": f"entry {i}",
                 "actor": "incident-operator"} for i in range(8)]
    base = {"priority": "P1", "severity": "Critical", "state": "Triggered", "startedAt": "2026-01-05T08:55:00Z",
            "detectedAt": "2026-01-05T09:00:00Z", "responseDeadline": "2026-01-05T09:05:00.000Z",
            "resolutionTarget": "2026-01-05T13:00:00Z", "escalation": {"level": 2}, "signal": SIGNAL,
            "timeline": timeline, "source": "DetectionRule"}
    base.update(status)
    return {
        "metadata": {"name": "login", "namespace": "support", "uid": "uid-1"},
        "spec": {"title": "Customers cannot log in", "service": "auth", "team": "identity", "priority": "P1",
                 "description": "SSO 502s", "owner": None, "commander": "cora",
                 "customerImpact": {"summary": "SSO users cannot log in", "ticketCount": 23,
                                    "affectedAccounts": [f"acct-{i}" for i in range(60)]},
                 "workaround": "Use password login",
                 "links": [{"title": "Dashboard", "url": "https://grafana/d/auth"}]},
        "status": base,
    }


def test_escalation_packet_carries_the_whole_context():
    packet = handoff.build_packet(incident(), {"key": "escalated-0-2", "event": "incident.escalated", "level": 2},
                                  NOW, policy="support/identity", policy_level=2, level_name="Support lead",
                                  timeline_entries=5)
    assert packet["type"] == "incident.escalated" and packet["dedupKey"] == "uid-1/escalated-0-2"
    assert packet["incident"]["title"] == "Customers cannot log in"
    assert packet["incident"]["priority"] == "P1" and packet["incident"]["state"] == "Triggered"
    assert packet["incident"]["commander"] == "cora" and packet["incident"]["owner"] is None
    assert packet["escalation"] == {"level": 2, "currentLevel": 2, "nextEscalationAt": None,
                                    "policy": "support/identity", "policyLevel": 2, "target": "Support lead"}
    assert packet["deadline"]["timeLeftSeconds"] == -300 and packet["deadline"]["timeLeft"] == "overdue by 5m"
    assert packet["evidence"]["query"] == SIGNAL["query"] and packet["evidence"]["baseline"] == 4.5
    assert packet["impact"]["affectedAccountCount"] == 60 and len(packet["impact"]["affectedAccounts"]) == 50
    assert packet["impact"]["ticketCount"] == 23
    assert [e["message"] for e in packet["timeline"]] == [f"entry {i}" for i in range(3, 8)]  # the latest
    assert packet["links"] == [{"title": "Dashboard", "url": "https://grafana/d/auth"},
                               {"title": "Detection signal graph", "url": "http://prom/graph?x"}]
    json.dumps(packet)  # serialisable as is


def test_time_left_before_the_deadline_and_after_acknowledgement():
    before = handoff.build_packet(incident(), {"key": "opened", "event": "incident.triggered"},
                                  datetime(2026, 1, 5, 9, 2, 30, tzinfo=timezone.utc))
    assert before["deadline"]["timeLeft"] == "2m left" and before["deadline"]["timeLeftSeconds"] == 150
    acked = handoff.build_packet(incident(acknowledgedAt="2026-01-05T09:06:00Z", state="Acknowledged"),
                                 {"key": "acknowledged-0", "event": "incident.acknowledged"}, NOW)
    assert acked["deadline"]["timeLeft"] == "acknowledged" and acked["deadline"]["acknowledged"] is True


def test_manual_incident_without_evidence():
    body = incident()
    del body["status"]["signal"]
    packet = handoff.build_packet(body, {"key": "opened", "event": "incident.triggered"}, NOW)
    assert packet["evidence"] is None
    assert "Detection evidence" not in handoff.render_markdown(packet)


def test_markdown_message_puts_the_essentials_first():
    packet = handoff.build_packet(incident(), {"key": "escalated-0-2", "event": "incident.escalated", "level": 2},
                                  NOW, level_name="Support lead")
    title, body = handoff.render_message(packet)
    assert title == "[P1] Escalated to level 2: Customers cannot log in (auth)"
    first = body.splitlines()[0]
    assert "P1 · Critical" in first and "escalated to level 2 (Support lead)" in first
    for text in ("**Response deadline:** 2026-01-05T09:05:00.000Z (overdue by 5m)", "**Owner:** unassigned",
                 "**Commander:** cora", "**Detection evidence**", "value 42, baseline 4.5, threshold 15, peak 51",
                 "Group: topic=login", "Affected accounts (60)", "and 10 more", "Support tickets: 23",
                 "**Workaround:** Use password login", "[Dashboard](https://grafana/d/auth)", "uid-1/escalated-0-2"):
        assert text in body, text
    assert handoff.notify_type(packet) == "failure"


def test_titles_per_event():
    body = incident(state="Acknowledged")
    body["spec"]["owner"] = "bob"
    ack = handoff.build_packet(body, {"key": "acknowledged-0", "event": "incident.acknowledged"}, NOW)
    assert handoff.render_title(ack) == "[P1] Acknowledged by bob: Customers cannot log in (auth)"
    resolved = handoff.build_packet(body, {"key": "resolved-0", "event": "incident.resolved"}, NOW)
    assert handoff.render_title(resolved).startswith("[P1] Resolved: ")
    assert handoff.notify_type(resolved) == "success"


def test_format_age():
    assert [format_age(s) for s in (5, 119, 120, 7199, 7200, 3 * 86400)] == \
        ["5s", "119s", "2m", "119m", "2h00m", "3d0h"]
    assert format_age(timedelta(hours=-1).total_seconds()) == "60m"
