"""The notifier: delivers queued hand-off notifications and publishes customer drafts.

Driven by the incident queue (services/incidents.py): each time the queue processes an incident,
after the lifecycle sync, it calls :meth:`Notifier.deliver_due` with the incident as written, and
takes the returned next due time into the incident's due time. The notifier has no tasks, events
or timers of its own: the queue's one timer wakes the incident when a retry falls due, and the
re-list after a restart passes every incident through the queue. One pass:

1. publishes the drafts (``<name>-drafts`` ConfigMap owned by the incident, ``status.drafts``)
   when the incident's state or generation changed since they were last rendered;
2. for every due item in ``status.notifications.pending``: picks the EscalationPolicy,
   claims the item with a conditional write (attempts + 1), sends the hand-off packet to the
   channels of the target level(s) not yet in ``sentTo``, and records the result with a
   conditional write (delivered, or the redacted error and the next attempt time);
3. returns when to look again (the earliest next attempt), or None when nothing is pending.

Every decision is in domain/notify/book.py; everything a pass knows is read from the incident and
every write goes through the write policy (adapters/kube.py), so a SIGKILL at any point loses
nothing and repeats nothing that was recorded. A failed send becomes status, a timeline entry and
a log line; only an API failure raises (the queue retries the incident).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Mapping

from ..adapters import kube, notify
from ..api import INCIDENT_LABEL, INITIAL_STATE, State, is_at_least
from ..names import drafts_configmap_name, fits_label_value
from ..config import OperatorConfig
from ..domain.notify import comms, handoff
from ..domain.notify import book as book_ops
from ..domain.common.timeutil import format_time, utcnow
from .rendering import RenderExecutor, run_rendering

log = logging.getLogger(__name__)
INCIDENTS = kube.INCIDENTS
# A pass that leaves an item due (it could not be claimed: a rival holds it) looks again after
# this, rather than at once: the rival records it or its claim expires.
MIN_REPASS = timedelta(seconds=1)
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def operator_namespace() -> str | None:
    """The namespace the operator runs in (downward API ``POD_NAMESPACE``, else the service account's)."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or None
    except OSError:
        return None


def drafts_stale(body: Mapping[str, Any]) -> bool:
    status = body.get("status") or {}
    if not status.get("state"):
        return False  # the lifecycle has not processed it yet
    drafts = status.get("drafts") or {}
    return (drafts.get("state") != status.get("state")
            or drafts.get("observedGeneration") != (body.get("metadata") or {}).get("generation"))


def has_work(body: Mapping[str, Any]) -> bool:
    status = body.get("status") or {}
    return bool((status.get("notifications") or {}).get("pending")) or drafts_stale(body)


@dataclass(frozen=True)
class Pass:
    """What one :meth:`Notifier.deliver_due` pass leaves: the incident as last written or read
    (None: it is gone) and when the notifier next needs it (None: nothing pending)."""

    body: dict[str, Any] | None
    next_due: datetime | None


class Notifier:
    def __init__(self, api: kube.KubeApi, config: OperatorConfig, *, policies: notify.PolicyCache | None = None,
                 clock: Callable[[], datetime] = utcnow, rand: Callable[[], float] = random.random,
                 renderer: RenderExecutor | None = None):
        self.kube = api
        self.config = config
        self.settings = config.delivery
        self.policies = policies or notify.PolicyCache(api)
        self.shared_namespace = config.escalation_policies.namespace or operator_namespace()
        self.templates_namespace = config.templates_namespace or operator_namespace()
        self.clock = clock
        self.rand = rand
        # Bounds the sends in flight across all incidents (``notifications.concurrency``).
        self._send_slots = asyncio.Semaphore(self.settings.concurrency)
        # Draft templates (tenant overrides) render on the render executor, off the event loop.
        self.renderer = renderer

    async def deliver_due(self, body: dict[str, Any], *, fresh: bool = True) -> Pass:
        """One pass over one incident.

        ``fresh``: ``body`` was just read or written. Otherwise it came with a watch event that may
        be older than what this operator wrote since (the late echo of an earlier write of this
        pass); an incident with work is then read first, so stale drafts or items already
        delivered are not worked on again.
        """
        if not has_work(body):
            return Pass(body, None)
        if not fresh:
            meta = body["metadata"]
            current = await self.kube.get_object(INCIDENTS, meta["namespace"], meta["name"])
            if current is None:
                return Pass(None, None)
            body = current
            if not has_work(body):
                return Pass(body, None)
        drafts_retry = None
        if drafts_stale(body):
            published = await self.publish_drafts(body)
            if published is None:  # not stored (API error); try again later
                drafts_retry = self.clock() + book_ops.backoff(2, self.settings, self.rand())
            body = published or body
        now = self.clock()
        for item_key in book_ops.due_keys(book_ops.book_of(body.get("status")), now):
            current = await self.deliver(body, item_key)
            if current is None:
                return Pass(None, None)
            body = current
        due = [t for t in (book_ops.next_attempt_at(body.get("status") or {}), drafts_retry) if t is not None]
        if not due:
            return Pass(body, None)
        return Pass(body, max(min(due), self.clock() + MIN_REPASS) if min(due) <= now else min(due))

    # -- delivery ----------------------------------------------------------------------------------
    async def deliver(self, body: dict[str, Any], item_key: str) -> dict[str, Any] | None:
        """Claims, sends and records one pending notification. Returns the latest object."""
        status = body.get("status") or {}
        item = book_ops.find_item(book_ops.book_of(status), item_key)
        if item is None or not book_ops.is_due(item, self.clock()):
            return body
        meta = body["metadata"]
        spec = body.get("spec") or {}
        state = status.get("state") or spec.get("state") or INITIAL_STATE
        if (item.get("event") in (book_ops.ESCALATED, book_ops.DEADLINE_WARNING)
                and is_at_least(state, State.ACKNOWLEDGED)):
            what = "escalation notice" if item.get("event") == book_ops.ESCALATED else "deadline warning"
            return await self._record(body, item_key, book_ops.DeliveryResult(
                book_ops.SUPERSEDED, detail=f"the incident was {state} before the {what} went out"))

        try:
            candidates = await self.policies.candidates(meta["namespace"], self.shared_namespace)
            policy = book_ops.select_policy(spec.get("team"), *candidates)
        except notify.ChannelError as error:
            current, claimed = await self._claim(body, item_key)
            if current is None or claimed is None:
                return current
            return await self._record(current, item_key, book_ops.DeliveryResult(book_ops.FAILED, errors=[str(error)]))
        if policy is None:
            where = " or ".join(f"namespace {ns}" for ns in dict.fromkeys(
                [meta["namespace"], self.shared_namespace]) if ns)
            team = f"team {spec['team']!r}" if spec.get("team") else "incidents without a team"
            return await self._record(body, item_key, book_ops.DeliveryResult(
                book_ops.NO_POLICY, detail=f"no EscalationPolicy for {team} in {where}"))
        policy_meta = policy.get("metadata") or {}
        policy_ref = f"{policy_meta.get('namespace')}/{policy_meta.get('name')}"
        targets = book_ops.targets_for(item, policy.get("spec") or {})
        if not targets:
            return await self._record(body, item_key, book_ops.DeliveryResult(
                book_ops.NO_CHANNELS, policy=policy_ref, detail=f"EscalationPolicy {policy_ref} has no channel for it"))

        current, claimed = await self._claim(body, item_key)
        if current is None or claimed is None:
            return current
        body, item = current, claimed
        done = set(item.get("sentTo") or [])
        remaining = [t for t in targets if t.id not in done]
        now = self.clock()
        messages: dict[int, tuple[dict[str, Any], str, str]] = {}
        for target in remaining:
            if target.level not in messages:
                packet = handoff.build_packet(body, item, now, policy=policy_ref, policy_level=target.level,
                                              level_name=target.level_name,
                                              timeline_entries=self.settings.packet_timeline_entries)
                title, text = handoff.render_message(packet)
                messages[target.level] = (packet, title, text)

        async def send(target: book_ops.Target) -> tuple[book_ops.Target, notify.SendResult]:
            packet, title, text = messages[target.level]
            async with self._send_slots:
                try:
                    url = await notify.channel_url(self.kube, policy_meta.get("namespace") or meta["namespace"],
                                                   target.secret_name, target.secret_key)
                except notify.ChannelError as error:
                    return target, notify.SendResult(False, str(error))
                result = await notify.send(url, title, text, handoff.notify_type(packet), packet,
                                           self.settings.send_timeout.total_seconds())
                return target, result

        results = await asyncio.gather(*(send(t) for t in remaining))
        sent = [t.id for t, r in results if r.ok]
        errors = [f"level {t.level} {t.level_name}/{t.channel}: {r.error}" for t, r in results if not r.ok]
        result = book_ops.DeliveryResult(
            book_ops.FAILED if errors else book_ops.DELIVERED, sent=sent, errors=errors, policy=policy_ref,
            targets=[f"level {t.level} ({t.level_name}) {t.channel}" for t in targets])
        if errors:
            log.warning(f"Notifier: {meta['namespace']}/{meta['name']} {item_key}: {'; '.join(errors)}")
        else:
            log.info(f"Notifier: {meta['namespace']}/{meta['name']} {item_key} delivered via {policy_ref}")
        return await self._record(body, item_key, result)

    async def _claim(self, body: dict[str, Any], item_key: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """Conditional write attempts + 1: (the incident as written, the claimed item); the item is
        None when it is gone or another replica has it (then the incident as read, or None if gone)."""

        def claim(current: dict[str, Any]) -> dict[str, Any] | None:
            book = book_ops.book_of(current.get("status"))
            item = book_ops.find_item(book, item_key)
            if item is None or not book_ops.is_due(item, self.clock()):
                return None
            return {"notifications": book_ops.claim(book, item_key, self.clock(), self.settings)}

        meta = body["metadata"]
        written = await self.kube.write_status(INCIDENTS, meta["namespace"], meta["name"], claim, body=body)
        if written is None:
            return None, None
        if not written.wrote:
            return written.body, None
        return written.body, book_ops.find_item(book_ops.book_of(written.body.get("status")), item_key) or {}

    async def _record(self, body: dict[str, Any], item_key: str,
                      result: book_ops.DeliveryResult) -> dict[str, Any] | None:
        """Records ``result`` for the item (nothing when someone else recorded it meanwhile)."""

        def record(current: dict[str, Any]) -> dict[str, Any] | None:
            return book_ops.record(current.get("status") or {}, item_key, result, self.clock(), self.settings,
                                   generation=current["metadata"].get("generation"), rand=self.rand(),
                                   timeline_limit=self.config.timeline_limit)

        meta = body["metadata"]
        written = await self.kube.write_status(INCIDENTS, meta["namespace"], meta["name"], record, body=body)
        return None if written is None else written.body

    # -- drafts ------------------------------------------------------------------------------------
    async def template_overrides(self, namespace: str) -> tuple[dict[str, str] | None, str, str | None]:
        """(templates, where they came from, error) from the templates ConfigMap, if configured."""
        name = self.config.templates_configmap
        if not name:
            return None, "", None
        for ns in dict.fromkeys([namespace, self.templates_namespace]):
            if not ns:
                continue
            try:
                data = await self.kube.read_configmap(ns, name)
            except kube.ApiError as error:
                return None, "", f"cannot read templates ConfigMap {ns}/{name}: {type(error).__name__}"
            if data is not None:
                return {k: v for k, v in data.items() if k.endswith(".j2")}, f"ConfigMap {ns}/{name}", None
        return None, "", None

    async def publish_drafts(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """Renders the drafts into ``<name>-drafts`` and points ``status.drafts`` at it."""
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        configmap = drafts_configmap_name(name)
        overrides, source, error = await self.template_overrides(namespace)
        now = self.clock()
        errors = [error] if error else []
        try:
            drafts = await run_rendering(self.renderer, comms.render_drafts, body, now, overrides, None, source)
            errors += drafts.errors
            data = {f"{kind}.md": text for kind, text in drafts.texts.items()}
            data["statuspage.json"] = json.dumps(comms.statuspage_payload(body, drafts), indent=2)
            data["publicState"] = drafts.public_state
            labels = {INCIDENT_LABEL: name} if fits_label_value(name) else {}
            await self.kube.upsert_configmap(namespace, configmap, data, owner=body, labels=labels)
            public = drafts.public_state
        except comms.DraftError as failure:
            errors.append(str(failure))
            public = comms.public_state((body.get("status") or {}).get("state"), body.get("spec"))
        except kube.ApiError as failure:  # e.g. the API refused the ConfigMap
            log.warning(f"Notifier: drafts for {namespace}/{name} not stored: {failure}")
            return None
        for message in errors:
            log.warning(f"Notifier: drafts for {namespace}/{name}: {message}")
        rendered_state = (body.get("status") or {}).get("state")
        rendered_generation = body["metadata"].get("generation")

        def point_at_drafts(current: dict[str, Any]) -> dict[str, Any] | None:
            if ((current.get("status") or {}).get("state") != rendered_state
                    or current["metadata"].get("generation") != rendered_generation):
                return None  # changed meanwhile: rendered again on the incident's next pass
            return {"drafts": {
                "configMap": configmap,
                "publicState": public,
                "state": rendered_state,
                "observedGeneration": rendered_generation,
                "updatedAt": format_time(now),
                "error": "; ".join(errors)[:2000] if errors else None,
            }}

        written = await self.kube.write_status(INCIDENTS, namespace, name, point_at_drafts, body=body)
        return None if written is None else written.body
