"""names.py: the outputs are pinned, because existing objects carry these names.

Incident names are deterministic (creation is idempotent by name): an operator that computed a
different name for the same episode after an upgrade would open a second incident. Every expected
value below was produced by the builders as they were before they moved here
(domain/detection/rules.py, domain/alerts/alertmanager.py, services/detection.py,
services/notifier.py); none may change.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from incident_operator import names


@pytest.mark.parametrize("namespace,rule,group,expected", [
    ("support", "login-spike", {"service": "login"}, "8bc5e53d9613d1ad"),
    ("ns", "r", {}, "7ba714af2eb18ea4"),
    ("a", "b", {"z": "1", "a": "2"}, "702e91d087a19e1f"),
])
def test_rule_fingerprint_is_unchanged(namespace, rule, group, expected):
    assert names.rule_fingerprint(namespace, rule, group) == expected


def test_rule_fingerprint_ignores_label_order():
    assert names.rule_fingerprint("a", "b", {"a": "2", "z": "1"}) == "702e91d087a19e1f"


@pytest.mark.parametrize("rule,fingerprint,episode,expected", [
    ("login-spike", "0123456789abcdef", 1, "login-spike-012345-1"),
    ("Login_Spike.V2", "abcdef012345", 3, "login-spike-v2-abcdef-3"),
    ("x" * 80, "ffffff00", 0, "x" * 40 + "-ffffff-1"),
    ("---", "123456", -2, "rule-123456-1"),
    ("Ünïcode rule", "a1b2c3", 12, "n-code-rule-a1b2c3-12"),
])
def test_rule_incident_name_is_unchanged(rule, fingerprint, episode, expected):
    assert names.rule_incident_name(rule, fingerprint, episode) == expected


@pytest.mark.parametrize("name,episode", [
    ("login-spike-abc123-1", 1), ("login-spike-abc123-17", 17), ("foo", 0), ("am-123", 123),
])
def test_rule_episode_of_reads_the_name_back(name, episode):
    assert names.rule_episode_of(name) == episode


@pytest.mark.parametrize("group_key,label", [
    ('{}:{alertname="X"}', "incidents.buttercream.io/alert-group-25fb0bff77cf"),
    ('{}/{severity=~"crit"}:{service="login"}', "incidents.buttercream.io/alert-group-8bceda4ecdb8"),
    ("", "incidents.buttercream.io/alert-group-e3b0c44298fc"),
])
def test_alert_group_label_is_unchanged(group_key, label):
    assert names.alert_group_label(group_key) == label
    assert names.alert_group_hash(group_key) == label.rsplit("-", 1)[1]


@pytest.mark.parametrize("group_key,episode_start,expected", [
    ('{}:{alertname="X"}', None, "am-25fb0bff77cf"),
    ('{}:{alertname="X"}', datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc), "am-25fb0bff77cf-tb9ns0"),
    ("g", datetime(1970, 1, 1, tzinfo=timezone.utc), "am-cd0aa9856147-0"),
])
def test_alert_incident_name_is_unchanged(group_key, episode_start, expected):
    assert names.alert_incident_name(group_key, episode_start) == expected


@pytest.mark.parametrize("value,safe,with_fallback", [
    ("Login Service", "login-service", "login-service"),
    ("..weird__Name--", "weird__name", "weird__name"),
    ("", "", "unknown"),
    ("---", "", "unknown"),
    ("x" * 100, "x" * 63, "x" * 63),
    ("a" * 62 + "-b", "a" * 62, "a" * 62),  # cut at 63, then the trailing "-" goes
    ("ÄÖÜ", "", "unknown"),
])
def test_label_value_is_unchanged(value, safe, with_fallback):
    assert names.label_value(value) == safe
    assert names.label_value(value, fallback="unknown") == with_fallback


@pytest.mark.parametrize("incident,expected", [
    ("inc-1", "inc-1-drafts"),
    ("y" * 246, "y" * 246 + "-drafts"),  # exactly 253
    ("x" * 250, "x" * 237 + "-086d4a1c-drafts"),
])
def test_drafts_configmap_name_is_unchanged(incident, expected):
    assert names.drafts_configmap_name(incident) == expected
    assert len(names.drafts_configmap_name(incident)) <= 253


@pytest.mark.parametrize("number,expected", [
    (0, "0"), (1, "1"), (35, "z"), (36, "10"), (1772445600, "tb9ns0"), (-5, "0"),
])
def test_base36(number, expected):
    assert names.base36(number) == expected


def test_rule_names_as_label_values_are_cut_at_63():
    assert names.truncated_label_value("r" * 70) == "r" * 63
    assert names.fits_label_value("i" * 63) and not names.fits_label_value("i" * 64)
