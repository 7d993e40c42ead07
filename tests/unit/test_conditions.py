

def test_with_progress_sets_stalled_and_reconciling_abnormal_true():
    from datetime import datetime, timezone

    from incident_operator.domain.common.conditions import find_condition, with_progress
    from incident_operator.domain.detection.health import failure_progress

    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    t1 = datetime(2026, 1, 1, 0, 5, tzinfo=timezone.utc)
    done = with_progress(None, t0, 3)
    assert [(c["type"], c["status"], c["observedGeneration"]) for c in done] == [
        ("Stalled", "False", 3), ("Reconciling", "False", 3)]
    stalled = with_progress(done, t1, 4, stalled=("Invalid", "bad query"))
    s = find_condition(stalled, "Stalled")
    assert (s["status"], s["reason"], s["message"], s["lastTransitionTime"]) == (
        "True", "Invalid", "bad query", "2026-01-01T00:05:00Z")
    # Reconciling stays False (and its transition time too) while stalled: nothing is pending.
    r = find_condition(stalled, "Reconciling")
    assert (r["status"], r["reason"], r["lastTransitionTime"]) == ("False", "Stalled", "2026-01-01T00:00:00Z")
    retrying = with_progress(done, t1, 3, **failure_progress("Unavailable", "PrometheusUnavailable", "down"))
    assert find_condition(retrying, "Reconciling")["status"] == "True"
    assert find_condition(retrying, "Stalled")["status"] == "False"
    refused = with_progress(done, t1, 3, **failure_progress("QueryFailed", "QueryFailed", "bad_data"))
    assert find_condition(refused, "Stalled")["reason"] == "QueryFailed"
    assert find_condition(refused, "Reconciling")["status"] == "False"
    assert done == with_progress(None, t0, 3)  # the input is never modified
