"""Notification I/O: EscalationPolicies and their Secrets from the API, delivery through Apprise.

Channel URLs are Apprise URLs (``slack://...``, ``msteams://...``, ``pagerduty://...``,
``mailtos://...``, ``json://host:port/path`` for a generic webhook) read from Secrets at send
time; they are never logged, never written to the incident and never part of an error
message: every error text passes through :func:`redact` first.

JSON webhooks (``json://``/``jsons://``) receive Apprise's usual payload (``title``,
``message`` in Markdown, ``type``) plus the structured hand-off packet under ``handoff`` and
the event name under ``event``, so a receiver can parse fields instead of scraping text.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import parse_qsl, unquote, urlsplit

import apprise

from . import kube

POLICIES = "escalationpolicies"
log = logging.getLogger(__name__)
# Apprise logs channel URLs at DEBUG and hosts in warnings. Its records still reach the per-call
# capture that send_sync() reads (a handler on the apprise logger), but never the operator's
# log output: we log our own redacted summary instead.
logging.getLogger("apprise").propagate = False


class ChannelError(Exception):
    """A channel could not be used; the message is safe to record (no secret in it)."""


@dataclass(frozen=True)
class SendResult:
    ok: bool
    error: str | None = None


# ----------------------------------------------------------------------------------- policies

class PolicyCache:
    """EscalationPolicies per namespace, kept for a few seconds; one per operator (the notifier's).

    Every notification needs the policies of its namespace; listing them each time cost two LIST
    calls per notification (measured with benchmarks/incidents_scale.py). A policy edit takes
    effect within ``ttl`` seconds. Bounded: at most ``max_namespaces`` entries.
    """

    def __init__(self, api: kube.KubeApi, ttl: float = 5.0, max_namespaces: int = 256):
        self.kube = api
        self.ttl = ttl
        self.max_namespaces = max_namespaces
        self._entries: dict[str, tuple[float, list[dict[str, Any]]]] = {}

    async def get(self, namespace: str) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        cached = self._entries.get(namespace)
        if cached is not None and loop.time() - cached[0] < self.ttl:
            return cached[1]
        try:
            policies = await self.kube.list_objects(POLICIES, namespace)
        except kube.NotFound:  # the EscalationPolicy CRD is not installed
            policies = []
        if len(self._entries) >= self.max_namespaces:
            self._entries.pop(next(iter(self._entries)))
        self._entries[namespace] = (loop.time(), policies)
        return policies

    async def candidates(self, namespace: str, shared_namespace: str | None) -> list[list[dict[str, Any]]]:
        """The policies to choose from, in order: the incident's namespace, then the shared one."""
        try:
            lists = [await self.get(namespace)]
            if shared_namespace and shared_namespace != namespace:
                lists.append(await self.get(shared_namespace))
        except kube.ApiError as error:  # recorded on the incident and retried
            raise ChannelError(f"cannot list EscalationPolicies: {_api_reason(error)}") from None
        return lists


async def channel_url(api: kube.KubeApi, namespace: str, secret_name: str, key: str) -> str:
    """The Apprise URL in Secret ``namespace/secret_name`` under ``key``."""
    if not secret_name or not key:
        raise ChannelError("the channel has no secretRef name and key")
    try:
        value = await api.read_secret_key(namespace, secret_name, key)
    except kube.NotFound:
        raise ChannelError(f"Secret {namespace}/{secret_name} or its key {key!r} does not exist") from None
    except kube.ApiError as error:
        raise ChannelError(f"cannot read Secret {namespace}/{secret_name}: {_api_reason(error)}") from None
    value = value.strip()
    if not value:
        raise ChannelError(f"Secret {namespace}/{secret_name} key {key!r} is empty")
    return value


def _api_reason(error: Exception) -> str:
    status = getattr(error, "status", None)
    reason = getattr(error, "reason", None)
    if status:
        return f"HTTP {status} {reason or ''}".strip()
    return type(error).__name__


def validate_url(url: str) -> str | None:
    """None when ``url`` is a usable Apprise URL, else a safe explanation."""
    try:
        plugin = apprise.Apprise.instantiate(url)
    except Exception as error:  # noqa: BLE001 - Apprise parses an untrusted URL; any failure means "unusable"
        return redact(f"not a usable Apprise URL ({type(error).__name__}: {error})", url)
    if plugin is None:
        scheme = url.split("://", 1)[0] if "://" in url else ""
        known = scheme and scheme.isalnum() and len(scheme) < 20
        return ("not a valid Apprise URL" + (f" for the {scheme}:// service" if known else "")
                + " (or that service's requirements are not installed)")
    return None


async def check_policy(api: kube.KubeApi, policy: Mapping[str, Any]) -> tuple[list[str], int]:
    """Problems with a policy's channels (missing Secrets, invalid URLs) and the channel count."""
    namespace = (policy.get("metadata") or {}).get("namespace") or ""
    problems: list[str] = []
    count = 0
    for number, level in enumerate((policy.get("spec") or {}).get("levels") or [], start=1):
        for channel in level.get("channels") or []:
            count += 1
            ref = channel.get("secretRef") or {}
            where = f"level {number} channel {channel.get('name')!r}"
            try:
                url = await channel_url(api, namespace, str(ref.get("name") or ""), str(ref.get("key") or ""))
            except ChannelError as error:
                problems.append(f"{where}: {error}")
                continue
            problem = validate_url(url)
            if problem:
                problems.append(f"{where}: the URL in Secret {ref.get('name')} key {ref.get('key')!r} is {problem}")
    return problems, count


# ----------------------------------------------------------------------------------- sending

_SPLIT = re.compile(r"[/:@?&=#,;+]+")


def redact(text: str, *secrets: str) -> str:
    """Removes every part of the secret URLs (whole, host, user, password, path, query) from ``text``."""
    fragments: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        body = secret.split("://", 1)[-1]
        parts = {secret, body} | {part for part in _SPLIT.split(body) if len(part) >= 3}
        try:
            split = urlsplit(secret)
            parts |= {split.username or "", split.password or "", split.hostname or "", split.path,
                      str(split.port or "")}
            parts |= {value for pair in parse_qsl(split.query) for value in pair}
        except ValueError:
            pass
        for part in parts:
            for variant in (part, unquote(part)):
                if len(variant) >= 3:
                    fragments.add(variant)
    for fragment in sorted(fragments, key=len, reverse=True):
        if fragment:
            text = text.replace(fragment, "***")
    return text


def _configure(plugin: Any, packet: Mapping[str, Any], timeout: float) -> None:
    # JSON webhooks also get the structured packet (Apprise "payload extras").
    if getattr(plugin, "protocol", None) == "json" and isinstance(getattr(plugin, "payload_extras", None), dict):
        plugin.payload_extras["event"] = packet.get("type")
        plugin.payload_extras["handoff"] = dict(packet)
    for attribute in ("socket_connect_timeout", "socket_read_timeout"):
        current = getattr(plugin, attribute, None)
        if isinstance(current, (int, float)) and (current <= 0 or current > timeout):
            setattr(plugin, attribute, timeout)


def send_sync(url: str, title: str, body: str, notify_type: str, packet: Mapping[str, Any],
              timeout: float = 15.0) -> SendResult:
    """Sends one message through Apprise; never raises; the error (if any) is redacted."""
    try:
        plugin = apprise.Apprise.instantiate(url)
        if plugin is None:
            return SendResult(False, validate_url(url) or "not a valid Apprise URL")
        _configure(plugin, packet, timeout)
        sender = apprise.Apprise()
        sender.add(plugin)
        result = sender.notify(body=body, title=title, notify_type=notify_type,
                               body_format=apprise.NotifyFormat.MARKDOWN)
        if result:
            return SendResult(True)
        messages = []
        logs = getattr(result, "logs", None)  # Apprise >= 2: per-call captured logs
        if callable(logs):
            messages = [entry.message for entry in logs() if getattr(entry, "level", "") in ("WARNING", "ERROR")]
        detail = " ".join(dict.fromkeys(messages)) or "the service did not accept the notification"
        return SendResult(False, redact(f"{plugin.service_name}: {detail}", url))
    except Exception as error:  # noqa: BLE001 - any plugin's failure is reported on the incident, never raised
        return SendResult(False, redact(f"{type(error).__name__}: {error}", url))


async def send(url: str, title: str, body: str, notify_type: str, packet: Mapping[str, Any],
               timeout: float = 15.0) -> SendResult:
    try:
        return await asyncio.wait_for(asyncio.to_thread(send_sync, url, title, body, notify_type, packet, timeout),
                                      timeout * 3)
    except asyncio.TimeoutError:
        return SendResult(False, f"no answer within {timeout * 3:g}s")
