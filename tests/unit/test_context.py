"""The operator context (context.py) and the one place handlers are registered (app.py)."""

from __future__ import annotations

import asyncio
import copy

import kopf
import pytest

from incident_operator import api, app
from incident_operator.config import ConfigError, OperatorConfig
from incident_operator.context import OperatorContext, RuleWakeups


def test_kopfs_per_object_copy_of_the_memo_is_the_context_itself():
    async def scenario():
        context = app.build_context(OperatorConfig.from_dict({}))
        try:
            assert copy.copy(context) is context
            assert isinstance(context, OperatorContext) and context.alerts is None
        finally:
            await context.prometheus.close()

    asyncio.run(scenario())


def test_a_rule_change_wakes_only_that_rules_daemon_and_the_entry_goes_with_the_daemon():
    async def scenario():
        wakeups = RuleWakeups()
        with wakeups.registered("uid-a") as a, wakeups.registered("uid-b") as b:
            assert len(wakeups) == 2
            wakeups.wake("uid-a")
            assert a.is_set() and not b.is_set()
            wakeups.wake("uid-unknown")  # a rule whose daemon has not started: nothing to wake
        assert len(wakeups) == 0
        wakeups.wake("uid-a")  # after the daemon exited: nothing kept, nothing raised

    asyncio.run(scenario())


def test_a_restarted_daemon_keeps_its_own_wakeup_when_the_old_one_exits_late():
    async def scenario():
        wakeups = RuleWakeups()
        old = wakeups.registered("uid")
        old_event = old.__enter__()
        with wakeups.registered("uid") as new_event:
            old.__exit__(None, None, None)
            wakeups.wake("uid")
            assert new_event.is_set() and not old_event.is_set()
        assert len(wakeups) == 0

    asyncio.run(scenario())


def _handlers(registry: kopf.OperatorRegistry) -> set[tuple[str, str | None, str]]:
    found = set()
    for part in (registry._activities, registry._watching, registry._spawning, registry._changing):
        for handler in part.get_all_handlers():
            selector = getattr(handler, "selector", None)
            found.add((handler.fn.__name__, selector.any_name if selector else None,
                       str(getattr(handler, "reason", None) or getattr(handler, "activity", ""))))
    return found


def test_every_handler_is_registered_in_app():
    names = {(fn, plural) for fn, plural, _ in _handlers(app.build_registry())}
    assert names == {
        ("login_with_bounded_connections", None), ("configure", None), ("stop_incident_queue", None),
        ("incident_event", api.INCIDENTS),
        ("rule_changed", api.DETECTION_RULES), ("evaluator", api.DETECTION_RULES),
        ("policy_changed", api.ESCALATION_POLICIES), ("policy_recheck", api.ESCALATION_POLICIES),
    }
    changing = list(app.build_registry()._changing.get_all_handlers())
    for plural in (api.DETECTION_RULES, api.ESCALATION_POLICIES):
        mine = [h for h in changing if h.selector.any_name == plural]
        assert sorted(str(h.reason) for h in mine if h.reason) == ["create", "update"]
        assert [h.initial for h in mine if not h.reason] == [True]  # resume


def test_the_alertmanager_namespace_is_checked_against_the_watched_ones_at_start_up():
    enabled = {"alertmanager": {"enabled": True, "bearerTokenFile": "/token"}}
    config = OperatorConfig.from_dict(enabled)
    assert config.alertmanager.namespace is None  # not known until the watched namespaces are
    assert config.alertmanager_for(("support",)).namespace == "support"
    with pytest.raises(ConfigError, match="alertmanager.namespace is required"):
        config.alertmanager_for(())
    pinned = OperatorConfig.from_dict({"alertmanager": {**enabled["alertmanager"], "namespace": "billing"}})
    with pytest.raises(ConfigError, match="'billing' is not watched by this operator"):
        pinned.alertmanager_for(("support",))
    assert pinned.alertmanager_for(()).namespace == "billing"  # cluster-wide watches every namespace


def test_a_token_secret_without_namespace_is_looked_up_in_the_incidents_namespace():
    config = OperatorConfig.from_dict({"alertmanager": {"enabled": True, "tokenSecretRef": {"name": "am"}}})
    assert config.alertmanager_for(("support",)).token_secret_ref.namespace == "support"


@pytest.mark.parametrize("value,seconds", [("2m", 120), (45, 45.0), ("0s", 0)])
def test_new_series_delay_is_parsed_with_the_file(value, seconds):
    assert OperatorConfig.from_dict({"metrics": {"newSeriesDelay": value}}).new_series_delay == seconds
    assert OperatorConfig.from_dict({}).new_series_delay == 90


@pytest.mark.parametrize("value,message", [("-5s", "metrics.newSeriesDelay"), (-1, "must not be negative"),
                                           ("soon", "metrics.newSeriesDelay: ")])
def test_a_bad_new_series_delay_is_refused_at_load(value, message):
    with pytest.raises(ConfigError, match=message):
        OperatorConfig.from_dict({"metrics": {"newSeriesDelay": value}})


def test_escalation_policies_section_is_typed_and_checked():
    config = OperatorConfig.from_dict({"escalationPolicies": {"namespace": "oncall"}})
    assert config.escalation_policies.namespace == "oncall"
    with pytest.raises(ConfigError, match="escalationPolicies: unknown key"):
        OperatorConfig.from_dict({"escalationPolicies": {"namespaces": "oncall"}})
