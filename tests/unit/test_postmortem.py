"""The post-incident review document (domain/incident/postmortem.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from incident_operator.domain.incident import postmortem

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)
REVIEW = {
    "timelineNotes": "The on-call was in a meeting.",
    "rootCause": "An expired SAML certificate | on the proxy.",
    "detection": "The ticket rule fired 5 minutes after impact began.",
    "communication": "First status update after 20 minutes.",
    "actionItems": [
        {"title": "Alert 30 days before certificates expire", "owner": "dana", "dueDate": "2026-03-01"},
        {"title": "Status update within 15 minutes", "owner": "erin", "done": True, "url": "https://jira/X-1"},
    ],
}


def incident(review=None, **status):
    base = {
        "priority": "P1", "severity": "Critical", "state": "Closed", "source": "DetectionRule",
        "startedAt": "2026-03-02T09:40:00Z", "detectedAt": "2026-03-02T09:45:00Z",
        "acknowledgedAt": "2026-03-02T09:52:30Z", "investigatingAt": "2026-03-02T09:53:00Z",
        "mitigatedAt": "2026-03-02T10:05:00Z", "resolvedAt": "2026-03-02T10:20:00Z",
        "closedAt": "2026-03-03T08:00:00Z", "responseDeadline": "2026-03-02T09:50:00Z",
        "escalation": {"level": 1},
        "signal": {"rule": "support/login", "query": "sum(rate(tickets[5m]))", "value": 42, "baseline": 4},
        "conditions": [{"type": "ResponseOnTime", "status": "False", "reason": "AcknowledgedLate",
                        "message": "Acknowledged after the P1 response deadline"}],
        "timeline": [
            {"time": "2026-03-02T09:45:00Z", "type": "Detected", "message": "P1 incident opened (DetectionRule)",
             "actor": "incident-operator"},
            {"time": "2026-03-02T09:50:00Z", "type": "Escalated", "message": "escalated to level 1",
             "actor": "incident-operator"},
            {"time": "2026-03-02T09:50:01Z", "type": "Notified", "message": "incident.escalated delivered",
             "actor": "incident-operator/notifier"},
            {"time": "2026-03-02T09:52:30Z", "type": "StateChanged", "message": "Triggered → Acknowledged by bob",
             "actor": "incident-operator"},
        ],
    }
    base.update(status)
    return {"metadata": {"name": "login", "namespace": "support"},
            "spec": {"title": "Customers cannot log in", "service": "auth", "team": "identity", "owner": "bob",
                     "priority": "P1", "customerImpact": {"summary": "SSO users locked out", "ticketCount": 80,
                                                          "affectedAccounts": ["acme", "globex"]},
                     "resolution": "Renewed the certificate.", "review": review or {}},
            "status": base}


def test_durations_follow_the_rootly_formulas():
    spans = postmortem.durations(incident()["status"])
    assert spans == {"Time to detect": timedelta(minutes=5), "Time to acknowledge": timedelta(minutes=12, seconds=30),
                     "Time to mitigate": timedelta(minutes=25), "Time to resolve": timedelta(minutes=40)}
    assert postmortem.durations({"startedAt": "2026-03-02T09:40:00Z"})["Time to resolve"] is None


def test_format_span():
    assert [postmortem.format_span(timedelta(seconds=s)) for s in (0, 45, 750, 3 * 3600 + 5, 90000)] == \
        ["0s", "45s", "12m 30s", "3h 0m 5s", "1d 1h 0m"]
    assert postmortem.format_span(None) == "—"


def test_complete_review_document():
    document = postmortem.build_postmortem(incident(REVIEW), NOW)
    assert document.startswith("# Post-incident review: Customers cannot log in\n")
    assert "Review incomplete" not in document
    for text in ("| Priority / severity | P1 / Critical |", "| Owner | bob |", "| Highest escalation level | 1 |",
                 "**Customer impact:** SSO users locked out", "**Affected accounts (2):** acme, globex",
                 "**Support tickets:** 80", "**Resolution:** Renewed the certificate.",
                 "| Time to detect | 5m 0s | detectedAt − startedAt |",
                 "| Time to acknowledge | 12m 30s |", "| Time to resolve | 40m 0s |",
                 "Acknowledged after the P1 response deadline", "**Query:** `sum(rate(tickets[5m]))`",
                 "## Root cause", "An expired SAML certificate | on the proxy.", "## Detection review",
                 "## Communication", "First status update after 20 minutes.", "### Timeline notes"):
        assert text in document, text
    # Action items with owners; the overdue open one is marked; pipes are escaped inside tables.
    assert "| no | Alert 30 days before certificates expire | dana | 2026-03-01 (overdue) | — |" in document
    assert "| yes | Status update within 15 minutes | erin | — | https://jira/X-1 |" in document
    assert "1 of 2 action item(s) open." in document


def test_timeline_is_auto_built_in_order_from_milestones_and_entries():
    rows = postmortem.auto_timeline(incident()["status"])
    labels = [what for _, what, _ in rows]
    assert labels[0] == "Impact started"
    assert labels.count("Detected") == 1  # the timeline's own entry, not a duplicate milestone
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)
    assert labels[-1] == "Closed"
    document = postmortem.build_postmortem(incident(), NOW)
    assert "| 2026-03-02 09:50:01 | Notified | incident.escalated delivered (incident-operator/notifier) |" \
        in document


def test_incomplete_review_is_flagged_and_sections_say_so():
    document = postmortem.build_postmortem(incident({"rootCause": "Known."}, state="Resolved"), NOW)
    assert "> **Review incomplete** (required before it can be Closed); missing: timelineNotes, detection, " \
           "communication, actionItems." in document
    assert "_Not written yet._" in document and "_No action items yet._" in document


def test_open_incident_shows_how_long_it_has_been_open():
    body = incident(state="Investigating", resolvedAt=None, closedAt=None, mitigatedAt=None)
    document = postmortem.build_postmortem(body, datetime(2026, 3, 2, 11, 40, tzinfo=timezone.utc))
    assert "| Open for | 2h 0m 0s | now − startedAt |" in document
    assert "| Time to resolve | — |" in document
