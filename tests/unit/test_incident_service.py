"""The incident service (services/incidents.py) and the notifier it drives (services/notifier.py),
against the in-memory API (tests/unit/fakes.py) with conflicts injected on purpose: a rival write
between our read and our write never doubles an escalation level, a timeline entry, a claim or a
send. Sends go to a real loopback webhook receiver."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from incident_operator.adapters import kube, notify
from incident_operator.config import OperatorConfig
from incident_operator.domain.common.timeutil import format_time, parse_time
from incident_operator.domain.common.status import status_patch
from incident_operator.domain.incident.lifecycle import reconcile_incident
from incident_operator.services.incidents import (WAKE_MARGIN_SECONDS, DeliveryFailed, IncidentService,
                                                  sync_incident)
from incident_operator.services.notifier import Notifier
from tests.support.receiver import Receiver
from tests.unit.fakes import FakeKube

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
NS, NAME = "support", "login"
KEY = (NS, NAME)
CONFIG = OperatorConfig.from_dict({
    "deadlines": {"response": {"P1": "5m"}, "escalationInterval": {"P1": "5m"}, "maxEscalationLevel": 3},
    "notifications": {"backoff": {"initial": "10s", "max": "1m", "jitter": 0}, "sendTimeout": "5s"},
})


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


def cluster(receiver: Receiver | None = None) -> FakeKube:
    api = FakeKube()
    api.put(kube.INCIDENTS, {"kind": "Incident", "metadata": {"name": NAME, "namespace": NS,
                                                               "creationTimestamp": format_time(T0)},
                             "spec": {"title": "Login broken", "priority": "P1"}})
    if receiver is not None:
        api.put(notify.POLICIES, {"kind": "EscalationPolicy", "metadata": {"name": "oncall", "namespace": NS},
                                  "spec": {"levels": [{"name": "Primary", "channels": [
                                      {"name": "hook", "secretRef": {"name": "oncall", "key": "url"}}]}]}})
        api.secrets[(NS, "oncall")] = {"url": receiver.url("/hook")}
    return api


def service(api: FakeKube, clock: Clock, notifier: bool = True) -> IncidentService:
    events: list[tuple[str, str]] = []
    svc = IncidentService(api, CONFIG.lifecycle,
                          notifier=Notifier(api, CONFIG, clock=clock, rand=lambda: 0.5) if notifier else None,
                          post_event=lambda body, type, reason, message: events.append((type, reason)),
                          clock=clock)
    svc.events = events  # type: ignore[attr-defined]
    return svc


def stored(api: FakeKube) -> dict:
    return api.stored(kube.INCIDENTS, NS, NAME)


def timeline_types(api: FakeKube) -> list[str]:
    return [entry["type"] for entry in stored(api)["status"].get("timeline") or []]


def pending_keys(api: FakeKube) -> list[str]:
    return [item["key"] for item in stored(api)["status"]["notifications"]["pending"]]


def rival_sync(now: datetime):
    """A second replica's sync of the incident, written first (unconditionally)."""

    def rival(fake: FakeKube) -> None:
        current = fake.stored(kube.INCIDENTS, NS, NAME)
        outcome = reconcile_incident(current, now, CONFIG.lifecycle)
        patch = status_patch(current.get("status") or {}, outcome.status)
        fake.rival_status_patch(kube.INCIDENTS, NS, NAME, patch)

    return rival


# ----------------------------------------------------------------------------------- the sync

def test_a_rival_sync_between_read_and_write_leaves_one_level_one_entry_one_notification():
    api = cluster()
    asyncio.run(sync_incident(api, stored(api), CONFIG.lifecycle, clock=lambda: T0))
    later = T0 + timedelta(minutes=6)
    read = stored(api)  # what we computed from ...
    api.before_next_write(rival_sync(later))  # ... while a rival replica escalates first
    synced = asyncio.run(sync_incident(api, read, CONFIG.lifecycle, clock=lambda: later))
    assert api.conflicts == 1 and not synced.wrote  # re-read, recomputed: nothing left to write
    status = stored(api)["status"]
    assert status["escalation"]["level"] == 1
    assert timeline_types(api).count("Escalated") == 1
    assert pending_keys(api).count("escalated-0-1") == 1
    assert synced.outcome.next_wakeup == T0 + timedelta(minutes=10)


def test_side_effects_happen_once_per_written_change_not_per_attempt():
    api = cluster()
    clock = Clock(T0)
    svc = service(api, clock, notifier=False)
    asyncio.run(svc.process(KEY, stored(api)))
    clock.now = T0 + timedelta(minutes=6)
    api.fail_next_writes(2)  # two conflicts, then the write lands
    due = asyncio.run(svc.process(KEY, stored(api)))
    assert svc.events.count(("Warning", "Escalated")) == 1  # type: ignore[attr-defined]
    assert timeline_types(api).count("Escalated") == 1
    assert due == (T0 + timedelta(minutes=10)).timestamp() + WAKE_MARGIN_SECONDS
    asyncio.run(svc.process(KEY, stored(api)))  # the echo of our own write: nothing new
    assert svc.events.count(("Warning", "Escalated")) == 1  # type: ignore[attr-defined]


def test_an_incident_that_keeps_changing_is_left_to_the_queues_retry():
    api = cluster()
    api.fail_next_writes(kube.MAX_WRITE_ATTEMPTS)
    with pytest.raises(kube.StillConflicting):
        asyncio.run(service(api, Clock(T0), notifier=False).process(KEY, None))


def test_a_deleted_incident_has_no_due_time():
    api = cluster()
    api.objects.clear()
    assert asyncio.run(service(api, Clock(T0)).process(KEY, None)) is None


# ----------------------------------------------------------------------------------- notifications

def test_the_queue_step_delivers_what_is_due_claimed_once_despite_a_rival_write(receiver):
    api = cluster(receiver)
    clock = Clock(T0)
    svc = service(api, clock)
    # Writes in the step: the sync, the drafts, the claim, the record. A rival writes between the
    # drafts and our claim: the claim is recomputed from the object as it is, once.
    api.before_next_write(lambda fake: fake.rival_status_patch(kube.INCIDENTS, NS, NAME, {"reopenCount": 0}),
                          after=2)
    asyncio.run(svc.process(KEY, stored(api)))
    assert api.conflicts == 1
    (request,) = receiver.received()
    assert request.handoff["key"] == "opened"  # the stable dedup key receivers can use
    notes = stored(api)["status"]["notifications"]
    assert notes["pending"] == [] and notes["delivered"] == ["opened"]
    (notified,) = [e for e in stored(api)["status"]["timeline"] if e["type"] == "Notified"]
    assert "attempts" not in notified["message"]  # claimed once: "after N attempts" only when N > 1


def test_a_rival_that_claimed_first_means_we_send_nothing(receiver):
    api = cluster(receiver)
    clock = Clock(T0)
    svc = service(api, clock)

    def rival_claims(fake: FakeKube) -> None:
        from incident_operator.domain.notify import book

        current = fake.stored(kube.INCIDENTS, NS, NAME)
        claimed = book.claim(book.book_of(current["status"]), "opened", T0, CONFIG.delivery)
        fake.rival_status_patch(kube.INCIDENTS, NS, NAME, {"notifications": claimed})

    api.before_next_write(rival_claims, after=2)  # right before our claim
    due = asyncio.run(svc.process(KEY, stored(api)))
    assert receiver.received() == []
    (item,) = stored(api)["status"]["notifications"]["pending"]
    assert item["attempts"] == 1  # the rival's claim only
    # The queue looks again when the rival's claim expires (or at the escalation, if earlier).
    assert due == min(parse_time(item["nextAttemptAt"]), T0 + timedelta(minutes=5)).timestamp() \
        + WAKE_MARGIN_SECONDS


def test_a_failed_send_is_retried_at_its_backoff_through_the_queue(receiver):
    api = cluster(receiver)
    clock = Clock(T0)
    svc = service(api, clock)
    receiver.fail_with(500)
    due = asyncio.run(svc.process(KEY, stored(api)))
    (item,) = stored(api)["status"]["notifications"]["pending"]
    retry_at = parse_time(item["nextAttemptAt"])
    assert retry_at == T0 + timedelta(seconds=10)  # the configured backoff
    assert due == retry_at.timestamp() + WAKE_MARGIN_SECONDS  # earlier than the escalation at 09:05
    receiver.recover()
    clock.now = retry_at
    asyncio.run(svc.process(KEY, None))  # the queue's timer: re-read, deliver
    notes = stored(api)["status"]["notifications"]
    assert notes["delivered"] == ["opened"] and notes["pending"] == []
    (notified,) = [e for e in stored(api)["status"]["timeline"] if e["type"] == "Notified"]
    assert notified["message"].endswith("after 2 attempts")
    assert [r.ok for r in receiver.received(ok_only=False)] == [False, True]


def test_an_escalation_notice_after_acknowledgement_is_superseded_not_sent(receiver):
    api = cluster(receiver)
    clock = Clock(T0)
    svc = service(api, clock, notifier=False)
    asyncio.run(svc.process(KEY, stored(api)))
    clock.now = T0 + timedelta(minutes=6)
    asyncio.run(svc.process(KEY, stored(api)))  # escalated, notice pending, nobody delivered it
    api.put(kube.INCIDENTS, {**stored(api), "spec": {**stored(api)["spec"], "state": "Acknowledged",
                                                     "owner": "alice"}, "metadata": {
        **stored(api)["metadata"], "generation": 2}})
    asyncio.run(service(api, clock).process(KEY, None))
    assert all(r.handoff.get("key") != "escalated-0-1" for r in receiver.received(ok_only=False))
    notes = stored(api)["status"]["notifications"]
    assert "escalated-0-1" in notes["abandoned"] and "escalated-0-1" not in pending_keys(api)
    skipped = [e["message"] for e in stored(api)["status"]["timeline"] if e["type"] == "NotificationSkipped"]
    assert any("Acknowledged before the escalation notice went out" in m for m in skipped)


def test_drafts_are_published_and_republished_when_stale(receiver):
    api = cluster(receiver)
    clock = Clock(T0)
    svc = service(api, clock)
    asyncio.run(svc.process(KEY, stored(api)))
    drafts = stored(api)["status"]["drafts"]
    assert drafts["state"] == "Triggered" and drafts["observedGeneration"] == 1
    assert (NS, drafts["configMap"]) in api.configmaps
    body = stored(api)
    api.put(kube.INCIDENTS, {**body, "spec": {**body["spec"], "state": "Acknowledged", "owner": "alice"},
                             "metadata": {**body["metadata"], "generation": 2}})
    asyncio.run(svc.process(KEY, stored(api)))
    drafts = stored(api)["status"]["drafts"]
    assert drafts["state"] == "Acknowledged" and drafts["observedGeneration"] == 2


def test_a_failed_delivery_pass_keeps_the_incidents_own_due_time(receiver):
    api = cluster(receiver)
    clock = Clock(T0)
    svc = service(api, clock)

    def unavailable(fake: FakeKube) -> None:
        raise kube.Unavailable("ReadTimeoutError")

    api.before_next_write(unavailable, after=1)  # the drafts write, right after the sync
    with pytest.raises(DeliveryFailed) as failure:
        asyncio.run(svc.process(KEY, stored(api)))
    assert failure.value.due == (T0 + timedelta(minutes=5)).timestamp() + WAKE_MARGIN_SECONDS
    assert stored(api)["status"]["escalation"]  # the sync itself was written


def test_the_late_echo_of_an_earlier_write_does_no_work_twice(receiver):
    api = cluster(receiver)
    clock = Clock(T0)
    svc = service(api, clock)
    echoes: list[dict] = []
    # The incident as our sync wrote it, before the drafts, the claim and the record: what its watch
    # event carries if it arrives after the step is done.
    api.before_next_write(lambda fake: echoes.append(fake.stored(kube.INCIDENTS, NS, NAME)), after=1)
    asyncio.run(svc.process(KEY, stored(api)))
    writes, sent = len(api.writes), len(receiver.received(ok_only=False))
    assert "drafts" not in echoes[0]["status"] and pending_keys(api) == []
    asyncio.run(svc.process(KEY, echoes[0]))
    assert len(api.writes) == writes and len(receiver.received(ok_only=False)) == sent
