"""The notifier: delivers queued hand-off notifications and publishes customer drafts.

Installed as ``memo.notifier`` by runtime.py. The Incident handlers call :meth:`Notifier.enqueue`
after a status write that queued notifications and :meth:`Notifier.kick` whenever the object
still has work (also after a restart, when the re-list passes every incident through the incident
queue); the queue also wakes the incident at :meth:`Notifier.next_retry`. Each incident with work gets one worker task that:

1. publishes the drafts (``<name>-drafts`` ConfigMap owned by the incident, ``status.drafts``)
   when the incident's state or generation changed since they were last rendered;
2. for every due item in ``status.notifications.pending``: picks the EscalationPolicy,
   claims the item with a conditional write (attempts + 1), sends the hand-off packet to the
   channels of the target level(s) not yet in ``sentTo``, and records the result with a
   conditional write (delivered, or the redacted error and the next attempt time);
3. sleeps until the next retry is due, or exits when nothing is pending.

Every decision is in domain/notify/book.py; everything the worker knows is re-read from the
incident, so a SIGKILL at any point loses nothing and repeats nothing that was recorded.
Nothing here raises into the lifecycle: failures become status, timeline entries and logs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import random
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Mapping

from ..adapters import kube, notify
from ..config import OperatorConfig
from ..domain.notify import comms, handoff
from ..domain.notify import book as book_ops
from ..domain.incident.lifecycle import STATE_INDEX
from ..domain.common.timeutil import format_time, utcnow

log = logging.getLogger(__name__)
INCIDENTS = kube.INCIDENTS
MAX_CONFLICT_RETRIES = 8
DRAFTS_SUFFIX = "-drafts"
INCIDENT_LABEL = "incidents.buttercream.io/incident"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def operator_namespace() -> str | None:
    """The namespace the operator runs in (downward API ``POD_NAMESPACE``, else the service account's)."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or None
    except OSError:
        return None


def drafts_configmap_name(incident_name: str) -> str:
    name = incident_name + DRAFTS_SUFFIX
    if len(name) <= 253:
        return name
    digest = hashlib.sha256(incident_name.encode()).hexdigest()[:8]
    return f"{incident_name[:253 - len(DRAFTS_SUFFIX) - 9]}-{digest}{DRAFTS_SUFFIX}"


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


class Notifier:
    def __init__(self, config: OperatorConfig, *, clock: Callable[[], datetime] = utcnow,
                 rand: Callable[[], float] = random.random):
        self.config = config
        self.settings = config.delivery
        self.shared_namespace = config.escalation_policies.get("namespace") or operator_namespace()
        self.templates_namespace = config.templates_namespace or operator_namespace()
        self.clock = clock
        self.rand = rand
        self._workers: dict[tuple[str, str], tuple[asyncio.Task, asyncio.Event]] = {}
        self._slots: asyncio.Semaphore | None = None
        self._closed = False

    # -- the hooks the Incident handlers call ---------------------------------------------------
    def enqueue(self, body: Mapping[str, Any], notifications: list[Any]) -> None:
        """Called after a status write that queued ``notifications`` (already in ``status``)."""
        self.kick(body)

    def kick(self, body: Mapping[str, Any]) -> None:
        """Makes sure a worker looks at this incident now (no-op when it has nothing to do)."""
        if self._closed or not has_work(body):
            return
        meta = body.get("metadata") or {}
        key = (meta.get("namespace") or "", meta.get("name") or "")
        worker = self._workers.get(key)
        if worker is not None and not worker[0].done():
            worker[1].set()
            return
        event = asyncio.Event()
        task = asyncio.create_task(self._run(key, event), name=f"notifier {key[0]}/{key[1]}")
        self._workers[key] = (task, event)

    def next_retry(self, status: Mapping[str, Any] | None) -> datetime | None:
        """When the next pending notification is due, for the incident queue's timer.

        Items already due are being handled by a worker (they were kicked), so only future
        attempt times count; otherwise the queue would spin until the worker claimed them.
        """
        now = self.clock()
        times = [at for at in (book_ops.attempt_time(item) for item in
                               ((status or {}).get("notifications") or {}).get("pending") or [])
                 if at is not None and at > now]
        return min(times) if times else None

    async def close(self) -> None:
        self._closed = True
        tasks = [task for task, _ in self._workers.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._workers.clear()

    # -- the per-incident worker -------------------------------------------------------------------
    async def _run(self, key: tuple[str, str], event: asyncio.Event) -> None:
        namespace, name = key
        failures = 0
        try:
            while not self._closed:
                event.clear()
                try:
                    due = await self.process(namespace, name)
                    failures = 0
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - an API hiccup; retried, never raised into kopf
                    failures += 1
                    log.exception(f"Notifier: processing {namespace}/{name} failed; retrying")
                    due = self.clock() + book_ops.backoff(failures, self.settings, self.rand())
                if due is None and not event.is_set():
                    break
                timeout = None if due is None else max((due - self.clock()).total_seconds(), 0) + 0.005
                if timeout is None or timeout > 0:
                    try:
                        await asyncio.wait_for(event.wait(), timeout)
                    except asyncio.TimeoutError:
                        pass
        finally:
            current = self._workers.get(key)
            if current is not None and current[1] is event:
                del self._workers[key]

    async def process(self, namespace: str, name: str) -> datetime | None:
        """One pass over one incident; returns when to look again (None: nothing pending)."""
        body = await kube.get_object(INCIDENTS, namespace, name)
        if body is None:
            return None
        drafts_retry = None
        if drafts_stale(body):
            published = await self.publish_drafts(body)
            if published is None:  # not stored (API error); try again later
                drafts_retry = self.clock() + book_ops.backoff(2, self.settings, self.rand())
            body = published or body
        now = self.clock()
        for item_key in book_ops.due_keys(book_ops.book_of(body.get("status")), now):
            body = await self.deliver(body, item_key)
            if body is None:
                return None
        due = [t for t in (book_ops.next_attempt_at(body.get("status") or {}), drafts_retry) if t is not None]
        return min(due) if due else None

    # -- delivery ----------------------------------------------------------------------------------
    async def deliver(self, body: dict[str, Any], item_key: str) -> dict[str, Any] | None:
        """Claims, sends and records one pending notification. Returns the latest object."""
        status = body.get("status") or {}
        item = book_ops.find_item(book_ops.book_of(status), item_key)
        if item is None or not book_ops.is_due(item, self.clock()):
            return body
        meta = body["metadata"]
        spec = body.get("spec") or {}
        state = status.get("state") or spec.get("state") or "Triggered"
        if item.get("event") == book_ops.ESCALATED and STATE_INDEX.get(state, 0) >= STATE_INDEX["Acknowledged"]:
            return await self._record(body, item_key, book_ops.DeliveryResult(
                book_ops.SUPERSEDED, detail=f"the incident was {state} before the escalation notice went out"))

        try:
            candidates = await notify.policy_candidates(meta["namespace"], self.shared_namespace)
            policy = book_ops.select_policy(spec.get("team"), *candidates)
        except notify.ChannelError as error:
            claimed = await self._claim(body, item_key)
            if claimed is None:
                return await self._reread(body)
            body, _ = claimed
            return await self._record(body, item_key, book_ops.DeliveryResult(book_ops.FAILED, errors=[str(error)]))
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

        claimed = await self._claim(body, item_key)
        if claimed is None:
            return await self._reread(body)
        body, item = claimed
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
            async with self._send_slots():
                try:
                    url = await notify.channel_url(policy_meta.get("namespace") or meta["namespace"],
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

    def _send_slots(self) -> asyncio.Semaphore:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.settings.concurrency)
        return self._slots

    async def _reread(self, body: Mapping[str, Any]) -> dict[str, Any] | None:
        meta = body["metadata"]
        return await kube.get_object(INCIDENTS, meta["namespace"], meta["name"])

    async def _claim(self, body: dict[str, Any], item_key: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """Conditional write attempts + 1; None when the item is gone or another worker has it."""
        for _ in range(MAX_CONFLICT_RETRIES):
            book = book_ops.book_of(body.get("status"))
            item = book_ops.find_item(book, item_key)
            if item is None or not book_ops.is_due(item, self.clock()):
                return None
            claimed = book_ops.claim(book, item_key, self.clock(), self.settings)
            meta = body["metadata"]
            try:
                updated = await kube.patch_status(INCIDENTS, meta["namespace"], meta["name"],
                                                  {"notifications": claimed}, meta.get("resourceVersion"))
            except kube.Conflict:
                body = await self._reread(body)
                if body is None:
                    return None
                continue
            except kube.NotFound:
                return None
            return updated, book_ops.find_item(book_ops.book_of(updated.get("status")), item_key) or {}
        return None

    async def _record(self, body: dict[str, Any], item_key: str,
                      result: book_ops.DeliveryResult) -> dict[str, Any] | None:
        for _ in range(MAX_CONFLICT_RETRIES):
            meta = body["metadata"]
            fragment = book_ops.record(body.get("status") or {}, item_key, result, self.clock(), self.settings,
                                       generation=meta.get("generation"), rand=self.rand(),
                                       timeline_limit=self.config.timeline_limit)
            if fragment is None:
                return body
            try:
                return await kube.patch_status(INCIDENTS, meta["namespace"], meta["name"], fragment,
                                               meta.get("resourceVersion"))
            except kube.Conflict:
                body = await self._reread(body)
                if body is None:
                    return None
            except kube.NotFound:
                return None
        log.warning(f"Notifier: could not record {item_key} on {body['metadata']['name']}: kept conflicting")
        return body

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
                data = await kube.read_configmap(ns, name)
            except Exception as error:  # noqa: BLE001
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
            drafts = await asyncio.to_thread(comms.render_drafts, body, now, overrides, None, source)
            errors += drafts.errors
            data = {f"{kind}.md": text for kind, text in drafts.texts.items()}
            data["statuspage.json"] = json.dumps(comms.statuspage_payload(body, drafts), indent=2)
            data["publicState"] = drafts.public_state
            labels = {INCIDENT_LABEL: name} if len(name) <= 63 else {}
            await kube.upsert_configmap(namespace, configmap, data, owner=body, labels=labels)
            public = drafts.public_state
        except comms.DraftError as failure:
            errors.append(str(failure))
            public = comms.public_state((body.get("status") or {}).get("state"), body.get("spec"))
        except Exception as failure:  # noqa: BLE001 - e.g. the API refused the ConfigMap
            log.warning(f"Notifier: drafts for {namespace}/{name} not stored: {failure}")
            return None
        for message in errors:
            log.warning(f"Notifier: drafts for {namespace}/{name}: {message}")
        for _ in range(MAX_CONFLICT_RETRIES):
            status = body.get("status") or {}
            patch = {"drafts": {
                "configMap": configmap,
                "publicState": public,
                "state": status.get("state"),
                "observedGeneration": body["metadata"].get("generation"),
                "updatedAt": format_time(now),
                "error": "; ".join(errors)[:2000] if errors else None,
            }}
            try:
                return await kube.patch_status(INCIDENTS, namespace, name, patch,
                                               body["metadata"].get("resourceVersion"))
            except kube.Conflict:
                rendered_generation = body["metadata"].get("generation")
                body = await kube.get_object(INCIDENTS, namespace, name)
                if body is None:
                    return None
                if ((body.get("status") or {}).get("state") != status.get("state")
                        or body["metadata"].get("generation") != rendered_generation):
                    return body  # changed meanwhile: rendered again on the next pass (it was kicked)
            except kube.NotFound:
                return None
        return body
