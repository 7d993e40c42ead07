"""domain/incident/review.py and timeline.py."""

from __future__ import annotations

from datetime import datetime, timezone

from incident_operator.domain.incident.review import open_action_items, review_missing, review_required
from incident_operator.domain.incident.timeline import MESSAGE_LIMIT, append_entries, timeline_entry

COMPLETE = {"timelineNotes": "t", "rootCause": "r", "detection": "d", "communication": "c",
            "actionItems": [{"title": "fix", "owner": "ana"}, {"title": "test", "owner": "bo", "done": True}]}


def test_a_complete_review_misses_nothing():
    assert review_missing(COMPLETE) == []
    assert open_action_items(COMPLETE) == 1


def test_missing_parts_are_named():
    assert review_missing(None) == ["timelineNotes", "rootCause", "detection", "communication", "actionItems"]
    blank = {**COMPLETE, "rootCause": "   ", "actionItems": [{"title": "fix", "owner": " "}]}
    assert review_missing(blank) == ["rootCause", "actionItems[].owner"]


def test_only_p1_and_p2_require_a_review():
    assert [review_required(p) for p in ("P1", "P2", "P3", "P4")] == [True, True, False, False]


def test_the_timeline_keeps_the_newest_entries_and_bounds_messages():
    now = datetime(2026, 1, 2, 15, 4, 5, tzinfo=timezone.utc)
    entry = timeline_entry(now, "StateChanged", "x" * 5000)
    assert entry["time"] == "2026-01-02T15:04:05Z" and entry["actor"] == "incident-operator"
    assert len(entry["message"]) == MESSAGE_LIMIT
    old = [{"message": str(i)} for i in range(5)]
    assert [e["message"] for e in append_entries(old, [{"message": "new"}], limit=3)] == ["3", "4", "new"]
    assert append_entries(old, [{"message": "new"}], limit=0) == []
    assert append_entries(None, [entry]) == [entry]
