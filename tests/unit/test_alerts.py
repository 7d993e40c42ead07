"""Unit tests for domain/alerts/alertmanager.py: settings, payload validation, mapping, merging, correlation."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from incident_operator.domain.alerts import alertmanager as dom
from incident_operator import names
from incident_operator.api import DETECTED_AT_ANNOTATION, SERVICE_LABEL

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)


def raw_alert(status="firing", starts="2026-03-02T10:00:00Z", ends="0001-01-01T00:00:00Z", **labels):
    labels.setdefault("alertname", "HighErrors")
    return {"status": status, "labels": labels, "annotations": {"summary": "Errors are high", "description": "5xx"},
            "startsAt": starts, "endsAt": ends, "generatorURL": "http://prom:9090/graph?g0.expr=x",
            "fingerprint": "1a30ba71cca2921f"}


def payload(*alerts, status=None, group_key='{}:{alertname="HighErrors"}', **extra):
    alerts = list(alerts) or [raw_alert(severity="critical", service="checkout")]
    status = status or ("firing" if any(a["status"] == "firing" for a in alerts) else "resolved")
    body = {"version": "4", "groupKey": group_key, "truncatedAlerts": 0, "status": status,
            "receiver": "incident-operator", "groupLabels": {"alertname": "HighErrors"}, "commonLabels": {},
            "commonAnnotations": {}, "externalURL": "http://alertmanager:9093", "alerts": alerts}
    body.update(extra)
    return body


def settings(**raw) -> dom.AlertSettings:
    return dom.parse_settings({"enabled": True, "bearerTokenFile": "/t", "namespace": "support", **raw})


# -- settings ---------------------------------------------------------------------------------------------

def test_settings_defaults_and_validation():
    s = settings()
    assert s.port == 8082 and s.path == "/webhooks/alertmanager" and s.max_body_bytes == 1024 * 1024
    assert s.correlation_window_s == 1800 and s.recovery_window_s == 3600 and not s.resolve_on_resolved
    assert len(s.mappings) == 1 and s.mappings[0].matchers == ()
    assert dom.parse_settings({}).enabled is False  # disabled by default, no token needed

    with pytest.raises(dom.InvalidSettings, match="no token"):
        dom.parse_settings({"enabled": True, "namespace": "x"})
    with pytest.raises(dom.InvalidSettings, match="namespace is required"):
        dom.parse_settings({"enabled": True, "bearerTokenFile": "/t"})
    assert dom.parse_settings({"enabled": True, "bearerTokenFile": "/t"}, fallback_namespace="ns").namespace == "ns"
    assert dom.parse_settings({"enabled": True, "bearerTokenFile": "/t"}, require_namespace=False).namespace is None
    with pytest.raises(dom.InvalidSettings, match="not both"):
        settings(tokenSecretRef={"name": "s"})
    with pytest.raises(dom.InvalidSettings, match="unknown keys typo"):
        settings(typo=1)
    with pytest.raises(dom.InvalidSettings, match="maxBodyBytes"):
        settings(maxBodyBytes=10)
    with pytest.raises(dom.InvalidSettings, match="maxAlerts"):
        settings(maxAlerts=21)
    with pytest.raises(dom.InvalidSettings, match="correlationWindow"):
        settings(correlationWindow="soon")
    with pytest.raises(dom.InvalidSettings, match=r"priorities.fatal.*P1, P2"):
        settings(priorities={"fatal": "P0"})
    with pytest.raises(dom.InvalidSettings, match="mappings\\[0\\].matchers"):
        settings(mappings=[{"matchers": ["severity"]}])
    with pytest.raises(dom.InvalidSettings, match="unknown keys"):
        settings(mappings=[{"matcher": []}])


def test_secret_ref_defaults_to_the_incident_namespace_and_key_token():
    s = dom.parse_settings({"enabled": True, "namespace": "support", "tokenSecretRef": {"name": "am"}})
    assert s.token_secret_ref == dom.SecretRef("am", "token", "support")


# -- matchers and mappings ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, labels, expected", [
    ('severity="critical"', {"severity": "critical"}, True),
    ('severity="critical"', {"severity": "warning"}, False),
    ('severity!="info"', {}, True),
    ('severity=~"critical|error"', {"severity": "error"}, True),
    ('severity=~"crit"', {"severity": "critical"}, False),  # anchored, like Alertmanager
    ('team!~"db.*"', {"team": "dba"}, False),
    ("service=~'.+'", {}, False),
    ('env = prod', {"env": "prod"}, True),
])
def test_matchers(text, labels, expected):
    assert dom.parse_matcher(text).matches(labels) is expected


def test_priority_from_severity_label_with_defaults_overrides_and_fixed_priority():
    s = settings()
    mapping = s.mappings[0]
    for severity, priority in [("critical", "P1"), ("error", "P2"), ("high", "P2"), ("warning", "P3"),
                               ("info", "P4"), ("low", "P4"), ("CRITICAL", "P1"), ("", "P3"), ("weird", "P3")]:
        assert mapping.priority_of({"severity": severity}) == priority, severity
    s = settings(severityLabel="level", priorities={"page": "P1"}, defaultPriority="P4",
                 mappings=[{"matchers": ['team="db"'], "priority": "P2"}, {}])
    assert s.mapping_for({"team": "db", "level": "info"}).priority_of({"level": "info"}) == "P2"
    other = s.mapping_for({"team": "web"})
    assert other.priority_of({"level": "page"}) == "P1"
    assert other.priority_of({"level": "critical"}) == "P1"  # the defaults stay
    assert other.priority_of({"severity": "critical"}) == "P4"  # another label is read


def test_plan_group_maps_labels_and_annotations():
    s = settings(mappings=[{"matchers": ['severity=~"critical|warning"'], "serviceLabel": "app"}])
    alerts = [raw_alert(severity="warning", app="Checkout API", team="payments", starts="2026-03-02T10:05:00Z"),
              raw_alert(severity="critical", app="checkout", starts="2026-03-02T10:01:00Z", alertname="Latency"),
              raw_alert(severity="info", app="checkout", starts="2026-03-02T09:00:00Z")]
    alerts[1]["annotations"] = {"summary": "  Checkout is   slow ", "runbook_url": "https://run.book/latency"}
    plan = dom.plan_group(dom.parse_notification(payload(*alerts)), s)
    assert len(plan.alerts) == 2  # the info alert is not selected
    assert plan.priority == "P1"  # the most severe
    assert plan.title == "Checkout is slow"  # from the earliest firing alert, whitespace collapsed
    assert plan.service == "checkout"
    assert plan.team == "payments"
    assert plan.earliest == datetime(2026, 3, 2, 10, 1, tzinfo=timezone.utc)
    assert "2 alerts in this group (also: HighErrors)" in plan.description
    assert {"title": "Runbook", "url": "https://run.book/latency"} in plan.links

    nothing = dom.plan_group(dom.parse_notification(payload(raw_alert(severity="info"))), s)
    assert nothing is None


def test_plan_group_title_falls_back_to_alertname_and_labels_are_made_safe():
    alert = raw_alert(severity="critical", service="Checkout/EU")
    alert["annotations"] = {}
    plan = dom.plan_group(dom.parse_notification(payload(alert)), settings())
    assert plan.title == "HighErrors firing on checkout-eu"
    assert plan.service == "checkout-eu" and plan.description == ""


# -- payload validation ------------------------------------------------------------------------------------

def test_parse_notification_reads_the_v4_payload():
    n = dom.parse_notification(payload(raw_alert(starts="2026-03-02T10:00:00.123456789+01:00", severity="critical")))
    assert n.group_key == '{}:{alertname="HighErrors"}' and n.status == "firing"
    [a] = n.alerts
    assert a.starts_at == datetime(2026, 3, 2, 9, 0, 0, 123456, tzinfo=timezone.utc)
    assert a.ends_at is None  # Go's zero time
    assert a.alertname == "HighErrors" and a.fingerprint == "1a30ba71cca2921f"
    grafana = payload(version="1", orgId=1, silenceURL="http://grafana/silence")
    assert dom.parse_notification(grafana).version == "1"  # extra fields are ignored


@pytest.mark.parametrize("mutate, message", [
    (lambda p: p.pop("groupKey"), "groupKey is required"),
    (lambda p: p.update(version="3"), "version must be"),
    (lambda p: p.update(status="pending"), "status must be firing or resolved"),
    (lambda p: p.update(alerts={}), "alerts must be a list"),
    (lambda p: p["alerts"][0].pop("startsAt"), r"alerts\[0\].startsAt is required"),
    (lambda p: p["alerts"][0].update(startsAt="yesterday"), r"alerts\[0\].startsAt"),
    (lambda p: p["alerts"][0].update(startsAt="2026-03-02T10:00:00"), "no time zone"),
    (lambda p: p["alerts"][0].update(labels={"a": 1}), r"alerts\[0\].labels must be an object of strings"),
    (lambda p: p["alerts"][0].update(status="weird"), r"alerts\[0\].status"),
    (lambda p: p.update(truncatedAlerts=-1), "truncatedAlerts"),
    (lambda p: p.update(commonLabels=[]), "commonLabels"),
])
def test_parse_notification_refuses_bad_payloads(mutate, message):
    body = payload()
    mutate(body)
    with pytest.raises(dom.InvalidNotification, match=message):
        dom.parse_notification(body)
    with pytest.raises(dom.InvalidNotification, match="JSON object"):
        dom.parse_notification([body])


# -- identity and merging -------------------------------------------------------------------------------------

def test_incident_name_and_group_label_are_deterministic_and_valid():
    key = '{}/{severity="critical"}:{alertname="ProbeFailure"}'
    assert names.alert_incident_name(key) == names.alert_incident_name(key) != names.alert_incident_name(key + "x")
    assert names.alert_incident_name(key).startswith("am-") and len(names.alert_incident_name(key)) == 15
    later = names.alert_incident_name(key, T0)
    assert later.startswith(names.alert_incident_name(key) + "-") and len(later) <= 63
    label = names.alert_group_label(key)
    assert label.startswith("incidents.buttercream.io/alert-group-") and len(label.split("/")[1]) <= 63


def plan_of(*alerts, group_key="g1"):
    return dom.plan_group(dom.parse_notification(payload(*alerts, group_key=group_key)), settings())


def test_merge_alerts_is_idempotent_records_recovery_and_ignores_stale_firing():
    firing = plan_of(raw_alert(severity="critical"))
    first = dom.merge_alerts([], firing)
    assert [e["status"] for e in first.alerts] == ["firing"] and len(first.new_firing) == 1
    assert first.alerts[0] == {"groupKey": "g1", "alertname": "HighErrors", "status": "firing",
                               "startsAt": "2026-03-02T10:00:00.000Z"}
    repeat = dom.merge_alerts(first.alerts, firing)
    assert repeat.alerts == first.alerts and not repeat.changed

    resolved = plan_of(raw_alert("resolved", ends="2026-03-02T10:20:00Z", severity="critical"))
    after = dom.merge_alerts(first.alerts, resolved)
    assert after.alerts[0]["status"] == "resolved" and after.alerts[0]["endsAt"] == "2026-03-02T10:20:00.000Z"
    assert len(after.resolved) == 1 and not after.new_firing
    stale = dom.merge_alerts(after.alerts, firing)  # an HA peer lagging behind
    assert stale.alerts == after.alerts and not stale.changed

    refire = plan_of(raw_alert(starts="2026-03-02T11:00:00Z", severity="critical"))
    again = dom.merge_alerts(after.alerts, refire)
    assert [e["status"] for e in again.alerts] == ["resolved", "firing"] and len(again.new_firing) == 1


def test_merge_alerts_is_bounded_dropping_resolved_first():
    entries = [{"groupKey": "old", "alertname": f"A{i}", "status": "resolved" if i % 2 else "firing",
                "startsAt": "2026-03-02T09:00:00Z"} for i in range(20)]
    merged = dom.merge_alerts(entries, plan_of(raw_alert(severity="critical")), limit=20)
    assert len(merged.alerts) == 20
    assert merged.alerts[-1]["groupKey"] == "g1"
    assert "A1" not in [e["alertname"] for e in merged.alerts]  # the oldest resolved went first
    assert all(f"A{i}" in [e["alertname"] for e in merged.alerts] for i in range(0, 20, 2))


def test_alerts_with_the_same_name_and_start_share_an_entry_firing_while_any_fires():
    plan = plan_of(raw_alert("resolved", ends="2026-03-02T10:10:00Z", instance="a", severity="critical"),
                   raw_alert(instance="b", severity="critical"))
    merged = dom.merge_alerts([], plan)
    assert [e["status"] for e in merged.alerts] == ["firing"]


# -- correlation ------------------------------------------------------------------------------------------

def incident(name, service="checkout", state="Triggered", detected=T0, signal=None, source=None):
    status = {"detectedAt": detected.strftime("%Y-%m-%dT%H:%M:%SZ")} if detected else {}
    if signal is not None:
        status["signal"] = signal
    if source:
        status["source"] = source
    return {"metadata": {"name": name, "labels": {SERVICE_LABEL: service} if service else {},
                         "creationTimestamp": "2026-03-02T09:00:00Z", "annotations": {}},
            "spec": {"state": state}, "status": status}


def test_an_alert_joins_the_earliest_open_incident_of_its_service_within_the_window():
    spike = incident("spike", detected=T0 + timedelta(minutes=5), signal={"rule": "ns/r"})
    older = incident("older", detected=T0 - timedelta(minutes=10))
    others = [incident("resolved", state="Resolved"), incident("closed", state="Closed"),
              incident("other-service", service="db"), incident("too-old", detected=T0 - timedelta(hours=2))]
    assert dom.pick_for_alert([spike, *others], "checkout", T0, 1800)["metadata"]["name"] == "spike"
    assert dom.pick_for_alert([spike, older, *others], "checkout", T0, 1800)["metadata"]["name"] == "older"
    assert dom.pick_for_alert(others, "checkout", T0, 1800) is None
    assert dom.pick_for_alert([spike], "checkout", T0, 0) is None  # correlation off


def test_a_spike_joins_only_an_alert_incident_without_another_rules_spike():
    alert_incident = incident("am-1", signal={"alerts": [{"status": "firing"}]}, source="Alertmanager")
    spike_of_other_rule = incident("am-2", signal={"alerts": [{}], "rule": "ns/other", "fingerprint": "f-other"})
    manual = incident("manual")
    assert dom.pick_for_spike([manual, alert_incident], "checkout", T0, 1800, "f1")["metadata"]["name"] == "am-1"
    assert dom.pick_for_spike([spike_of_other_rule, manual], "checkout", T0, 1800, "f1") is None
    assert dom.pick_for_spike([spike_of_other_rule], "checkout", T0, 1800, "f-other") is not None  # itself again


def test_detected_time_is_the_earliest_of_status_and_annotation():
    obj = incident("x", detected=T0)
    obj["metadata"]["annotations"][DETECTED_AT_ANNOTATION] = "2026-03-02T09:58:00Z"
    assert dom.detected_time(obj) == T0 - timedelta(minutes=2)
    obj["status"] = {}
    obj["metadata"]["annotations"] = {}
    assert dom.detected_time(obj) == datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)  # creation


def test_first_signal_from_the_evidence():
    alerts = [{"startsAt": "2026-03-02T10:00:00Z"}, {"startsAt": "2026-03-02T09:50:00Z"}]
    assert dom.derive_first_signal({"alerts": alerts}) == "Alert"
    assert dom.derive_first_signal({"rule": "ns/r", "firstSeen": "2026-03-02T09:55:00Z", "alerts": alerts}) == "Alert"
    assert dom.derive_first_signal({"rule": "ns/r", "firstSeen": "2026-03-02T09:45:00Z", "alerts": alerts}) \
        == "TicketSpike"
    assert dom.derive_first_signal({"rule": "ns/r", "firstSeen": "2026-03-02T09:50:00Z", "alerts": alerts}) \
        == "TicketSpike"  # a tie goes to the support team's own signal
    assert dom.derive_first_signal({}) is None
    assert dom.earlier(T0, T0 - timedelta(seconds=1)) == T0 - timedelta(seconds=1)
    assert dom.earlier(T0, T0) is None and dom.earlier(None, T0) == T0


def test_stale_resolution_uses_the_recovery_window():
    obj = incident("x", state="Resolved")
    obj["status"]["resolvedAt"] = "2026-03-02T10:00:00Z"
    assert not dom.stale_resolution(obj, T0 + timedelta(minutes=59), 3600)
    assert dom.stale_resolution(obj, T0 + timedelta(minutes=61), 3600)
    assert not dom.stale_resolution(incident("y"), T0 + timedelta(days=1), 3600)


# -- the lifecycle side of "time to detect uses the earliest signal" --------------------------------------

def test_lifecycle_moves_detected_at_earlier_never_later():
    from incident_operator.domain.incident.calendar import BusinessCalendar
    from incident_operator.domain.incident.deadlines import DeadlinePolicy
    from incident_operator.domain.incident.lifecycle import LifecycleSettings, reconcile_incident

    settings_ = LifecycleSettings(calendar=BusinessCalendar.from_dict({}), policy=DeadlinePolicy.from_dict({}))
    now = T0 + timedelta(minutes=10)
    body = {"metadata": {"name": "x", "creationTimestamp": "2026-03-02T10:05:00Z", "generation": 1,
                         "annotations": {DETECTED_AT_ANNOTATION: "2026-03-02T10:05:00Z"}},
            "spec": {"title": "t", "priority": "P2", "state": "Triggered"}}
    first = reconcile_incident(body, now, settings_).status
    assert first["detectedAt"] == "2026-03-02T10:05:00Z"

    body["status"] = first
    body["metadata"]["annotations"][DETECTED_AT_ANNOTATION] = "2026-03-02T10:01:00Z"  # an earlier signal joined
    moved = reconcile_incident(body, now, settings_).status
    assert moved["detectedAt"] == "2026-03-02T10:01:00Z"
    assert moved["timeline"][-1]["type"] == "DetectedEarlier"
    assert moved["responseDeadline"].startswith("2026-03-02T10:31:00")  # deadlines follow

    body["status"] = moved
    body["metadata"]["annotations"][DETECTED_AT_ANNOTATION] = "2026-03-02T10:09:00Z"  # later: ignored
    again = reconcile_incident(body, now, settings_).status
    assert again["detectedAt"] == "2026-03-02T10:01:00Z"
    assert [e["type"] for e in again["timeline"]].count("DetectedEarlier") == 1
    body["metadata"]["annotations"][DETECTED_AT_ANNOTATION] = "2026-03-02T11:00:00Z"  # in the future: ignored
    assert reconcile_incident(body, now, settings_).status["detectedAt"] == "2026-03-02T10:01:00Z"
