"""Kubernetes writes and reads the handlers need beyond what kopf gives them.

All status writes go through :func:`patch_status` with the object's resourceVersion as a
precondition (optimistic concurrency). A 409 means someone else (a concurrent handler, a
second operator replica during a bad rollout) wrote first: the caller re-reads and
recomputes, so a level, a timeline entry or a notification is never written twice.

The official client is synchronous; calls run in worker threads.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

GROUP = "incidents.buttercream.io"
VERSION = "v1alpha1"
INCIDENTS = "incidents"
RULES = "detectionrules"

log = logging.getLogger(__name__)


class Conflict(Exception):
    """The object changed since it was read."""


class NotFound(Exception):
    pass


@functools.lru_cache(maxsize=1)
def api_client() -> kubernetes.client.ApiClient:
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
    configuration = kubernetes.client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = 32
    return kubernetes.client.ApiClient(configuration)


def custom_objects() -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(api_client())


def core() -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(api_client())


def _translate(error: ApiException):
    if error.status == 409:
        return Conflict(str(error.reason))
    if error.status == 404:
        return NotFound(str(error.reason))
    return error


async def _call(fn, *args, **kwargs):
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except ApiException as error:
        raise _translate(error) from error


async def get_object(plural: str, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return await _call(custom_objects().get_namespaced_custom_object, GROUP, VERSION, namespace, plural, name)
    except NotFound:
        return None


async def patch_status(plural: str, namespace: str, name: str, status_patch: dict[str, Any],
                       resource_version: str | None) -> dict[str, Any]:
    """Merge-patches ``status``; with ``resource_version`` the write fails with Conflict if stale."""
    body: dict[str, Any] = {"status": status_patch}
    if resource_version:
        body["metadata"] = {"resourceVersion": resource_version}
    return await _call(custom_objects().patch_namespaced_custom_object_status,
                       GROUP, VERSION, namespace, plural, name, body)


async def patch_spec(plural: str, namespace: str, name: str, spec_patch: dict[str, Any],
                     resource_version: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"spec": spec_patch}
    if resource_version:
        body["metadata"] = {"resourceVersion": resource_version}
    return await _call(custom_objects().patch_namespaced_custom_object, GROUP, VERSION, namespace, plural, name, body)


async def patch_object(plural: str, namespace: str, name: str, body: dict[str, Any],
                       resource_version: str | None = None) -> dict[str, Any]:
    body = dict(body)
    if resource_version:
        body["metadata"] = {**(body.get("metadata") or {}), "resourceVersion": resource_version}
    return await _call(custom_objects().patch_namespaced_custom_object, GROUP, VERSION, namespace, plural, name, body)


async def create_or_get(plural: str, namespace: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Creates the object, or returns the existing one of that name: idempotent by name."""
    name = body["metadata"]["name"]
    try:
        created = await _call(custom_objects().create_namespaced_custom_object, GROUP, VERSION, namespace, plural, body)
        return created, True
    except Conflict:
        existing = await get_object(plural, namespace, name)
        if existing is None:  # deleted in between; let the caller retry later
            raise
        return existing, False


async def list_objects(plural: str, namespace: str | None = None, label_selector: str | None = None) -> list[dict]:
    kwargs = {"label_selector": label_selector} if label_selector else {}
    if namespace:
        result = await _call(custom_objects().list_namespaced_custom_object, GROUP, VERSION, namespace, plural, **kwargs)
    else:
        result = await _call(custom_objects().list_cluster_custom_object, GROUP, VERSION, plural, **kwargs)
    return list(result.get("items") or [])


async def read_secret_key(namespace: str, name: str, key: str) -> str:
    import base64

    secret = await _call(core().read_namespaced_secret, name, namespace)
    data = (secret.data or {}).get(key)
    if data is None:
        raise NotFound(f"Secret {namespace}/{name} has no key {key!r}")
    return base64.b64decode(data).decode()


async def read_configmap(namespace: str, name: str) -> dict[str, str] | None:
    try:
        configmap = await _call(core().read_namespaced_config_map, name, namespace)
    except NotFound:
        return None
    return dict(configmap.data or {})


async def upsert_configmap(namespace: str, name: str, data: dict[str, str], owner: dict[str, Any],
                           labels: dict[str, str] | None = None) -> None:
    """Creates or replaces a ConfigMap owned by ``owner`` (garbage-collected with it)."""
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels or {},
            "ownerReferences": [{
                "apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": False,
            }],
        },
        "data": data,
    }
    try:
        await _call(core().create_namespaced_config_map, namespace, body)
    except Conflict:
        await _call(core().replace_namespaced_config_map, name, namespace, body)


# -- kopf peering (incident-operator --peering NAME) ---------------------------------------------------

KOPF_GROUP = "kopf.dev"
KOPF_VERSION = "v1"


async def ensure_peering(name: str, namespaces: tuple[str, ...]) -> None:
    """Creates kopf's peering object(s) NAME if missing: one ClusterKopfPeering for a cluster-wide
    operator, a KopfPeering in each watched namespace otherwise. kopf only patches them (a missing one
    means no peering, silently); the chart cannot ship them next to the CRDs it installs in the same
    release (their kind is unknown to the API server until the CRDs exist)."""
    body = {"apiVersion": f"{KOPF_GROUP}/{KOPF_VERSION}", "metadata": {"name": name}}
    api = custom_objects()
    try:
        if not namespaces:
            await _call(api.create_cluster_custom_object, KOPF_GROUP, KOPF_VERSION, "clusterkopfpeerings",
                        {**body, "kind": "ClusterKopfPeering"})
        for namespace in namespaces:
            try:
                await _call(api.create_namespaced_custom_object, KOPF_GROUP, KOPF_VERSION, namespace,
                            "kopfpeerings", {**body, "kind": "KopfPeering"})
            except Conflict:
                pass
    except Conflict:
        pass
