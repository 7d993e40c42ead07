"""The incident book (services/incident_book.py): what the gauges and the detection engine read."""

from __future__ import annotations

from incident_operator import metrics
from incident_operator.api import RULE_LABEL
from incident_operator.services.incident_book import DetectedSummary, IncidentBook


def incident(name, *, state="Triggered", priority="P2", labels=None, status=None, namespace="ops"):
    return {"metadata": {"namespace": namespace, "name": name, "labels": labels or {}},
            "spec": {"state": state, "priority": priority}, "status": status or {}}


def test_groups_incidents_by_priority_and_state_and_follows_changes():
    book = IncidentBook()
    book.observe(incident("a"))
    book.observe(incident("b", priority="P1"))
    book.observe(incident("a", state="Acknowledged"))  # a change replaces, never adds
    grouped = book.by_state()
    assert {key: len(entries) for key, entries in grouped.items()} == {("P2", "Acknowledged"): 1,
                                                                       ("P1", "Triggered"): 1}
    assert grouped[("P1", "Triggered")][0].unacknowledged is True
    book.forget("ops", "b")
    assert list(book.by_state()) == [("P2", "Acknowledged")] and len(book) == 1


def test_same_name_in_two_namespaces_are_two_incidents():
    book = IncidentBook()
    book.observe(incident("a", namespace="x"))
    book.observe(incident("a", namespace="y"))
    assert len(book) == 2


def test_detection_summary_only_for_incidents_a_rule_opened():
    book = IncidentBook()
    status = {"resolvedAt": "2026-11-27T10:00:00Z",
              "signal": {"value": 40, "peak": 55, "lastSeen": "2026-11-27T09:59:00Z"}}
    book.observe(incident("spike", state="Resolved", labels={RULE_LABEL: "login"}, status=status))
    book.observe(incident("manual"))
    assert book.detected("ops", "spike") == DetectedSummary(
        state="Resolved", resolved_at=1795773600.0, value=40, peak=55, last_seen=1795773540.0)
    assert book.detected("ops", "manual") is None and book.knows("ops", "manual")
    assert book.detected("ops", "unknown") is None and not book.knows("ops", "unknown")


def test_feeds_the_scrape_time_gauges():
    from prometheus_client import CollectorRegistry

    book = IncidentBook()
    book.observe(incident("a", priority="P1"))
    book.observe(incident("b", priority="P1", state="Closed"))
    sink = metrics.IncidentMetrics(CollectorRegistry(), book_source=book.by_state, version="test")
    value = sink.registry.get_sample_value
    assert value("incidents_open", {"priority": "P1", "state": "Triggered"}) == 1
    assert value("incidents_open", {"priority": "P1", "state": "Acknowledged"}) == 0
