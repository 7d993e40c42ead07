"""Kubernetes reads and writes the services need beyond what kopf gives them, and THE write policy.

The write policy (:meth:`WritePolicy.write_status`, :meth:`WritePolicy.write`) is the only place
that retries a write. Every status write carries the object's resourceVersion as a precondition
(optimistic concurrency). A 409 means someone else (a concurrent handler, a second operator
replica during a bad rollout) wrote first: the policy re-reads the object and asks the caller's
``compute`` again what to write, so a level, a timeline entry or a notification is never written
twice. ``compute`` is pure (it may run several times); side effects belong after the write.

Services depend on the :class:`KubeApi` protocol, not on this module's client: the app builds one
:class:`KubeClient`; unit tests give services an in-memory fake with the same policy
(tests/unit/fakes.py).

The official client is synchronous; calls run in worker threads, each with a request timeout.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import functools
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

# Re-exported for the callers' convenience; the names live in api.py.
from ..api import DETECTION_RULES as RULES, GROUP, INCIDENTS, VERSION  # noqa: F401
# kopf's peering objects (``incident-operator --peering NAME``).
KOPF_GROUP = "kopf.dev"
KOPF_VERSION = "v1"

# Write attempts per write_status/write call, counting every attempt (a 409 and a successful
# object write each use one). Eight rival writes in a row means the object is being rewritten
# faster than we can read it: the caller's retry (the incident queue, kopf's TemporaryError,
# the next evaluation) takes over, after a delay.
MAX_WRITE_ATTEMPTS = 8
# (connect, read) seconds for every API call: a hung apiserver connection must not hold a
# worker thread, a queue slot or a rule's daemon forever.
REQUEST_TIMEOUT = (5.0, 30.0)
# Threads (and pooled connections) for Kubernetes API calls; see KubeClient.__init__.
API_THREADS = 32

Body = dict[str, Any]
# What to write given the object as it is now: a merge patch, or None when nothing is to be written.
Compute = Callable[[Body], "dict[str, Any] | None"]


class ApiError(Exception):
    """The API refused a call or did not answer; ``status`` is the HTTP status (None: no answer)."""

    default_status: int | None = None

    def __init__(self, reason: str = "", status: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status if status is not None else self.default_status

    @property
    def retryable(self) -> bool:
        """Worth trying again later (no answer, conflict, throttled, server error); else hopeless."""
        return self.status is None or self.status in (409, 429) or self.status >= 500


class Conflict(ApiError):
    """The object changed since it was read."""

    default_status = 409


class StillConflicting(Conflict):
    """Every attempt of the write policy conflicted with a newer version of the object."""


class NotFound(ApiError):
    default_status = 404


class Unavailable(ApiError):
    """No answer: connection refused or reset, or the request timed out."""


@dataclass(frozen=True)
class Written:
    """The outcome of the write policy: the object as last written (``wrote``) or as last read
    when ``compute`` asked for nothing (then ``wrote`` is False)."""

    body: Body
    wrote: bool


class KubeApi(Protocol):
    """What services use of the Kubernetes API (custom objects in our group, ConfigMaps, Secrets)."""

    async def get_object(self, plural: str, namespace: str, name: str) -> Body | None: ...

    async def list_objects(self, plural: str, namespace: str | None = None,
                           label_selector: str | None = None) -> list[Body]: ...

    async def write_status(self, plural: str, namespace: str, name: str, compute: Compute, *,
                           body: Body | None = None) -> Written | None: ...

    async def write(self, plural: str, namespace: str, name: str, compute: Compute, *,
                    body: Body | None = None) -> Written | None: ...

    async def patch_object(self, plural: str, namespace: str, name: str, body: Mapping[str, Any],
                           resource_version: str | None = None) -> Body: ...

    async def create_or_get(self, plural: str, namespace: str, body: Body) -> tuple[Body, bool]: ...

    async def read_secret_key(self, namespace: str, name: str, key: str) -> str: ...

    async def read_configmap(self, namespace: str, name: str) -> dict[str, str] | None: ...

    async def upsert_configmap(self, namespace: str, name: str, data: dict[str, str],
                               owner: Mapping[str, Any], labels: dict[str, str] | None = None) -> None: ...


class WritePolicy:
    """The write policy over four primitives a subclass provides (the real client, or a fake):
    ``get_object``, ``patch_status`` and ``patch_object`` (conditional on ``resource_version``,
    raising :class:`Conflict`/:class:`NotFound`), and ``create_object``."""

    async def get_object(self, plural: str, namespace: str, name: str) -> Body | None:
        raise NotImplementedError

    async def patch_status(self, plural: str, namespace: str, name: str, status_patch: Mapping[str, Any],
                           resource_version: str | None) -> Body:
        raise NotImplementedError

    async def patch_object(self, plural: str, namespace: str, name: str, body: Mapping[str, Any],
                           resource_version: str | None = None) -> Body:
        raise NotImplementedError

    async def create_object(self, plural: str, namespace: str, body: Body) -> Body:
        raise NotImplementedError

    async def write_status(self, plural: str, namespace: str, name: str, compute: Compute, *,
                           body: Body | None = None) -> Written | None:
        """Writes ``compute(object)`` into ``status``, conditionally; see :meth:`write`."""

        def as_object_patch(current: Body) -> dict[str, Any] | None:
            patch = compute(current)
            return {"status": patch} if patch else None

        return await self.write(plural, namespace, name, as_object_patch, body=body)

    async def write(self, plural: str, namespace: str, name: str, compute: Compute, *,
                    body: Body | None = None) -> Written | None:
        """Reads the object (or starts from ``body``), asks ``compute`` for a merge patch of it and
        writes it with the object's resourceVersion; on 409 re-reads and asks again.

        A patch's ``metadata``/``spec`` part is written to the object first, then ``compute`` is
        asked again about the object as written (so a status that depends on the new spec is
        computed from it); a ``status``-only patch goes to the status subresource and ends the
        write. At most :data:`MAX_WRITE_ATTEMPTS` attempts, then :class:`StillConflicting`.
        Returns None when the object does not exist (or is deleted meanwhile).
        """
        current = body if body is not None else await self.get_object(plural, namespace, name)
        wrote = False
        for _ in range(MAX_WRITE_ATTEMPTS):
            if current is None:
                return None
            patch = compute(current)
            if not patch:
                return Written(current, wrote)
            version = (current.get("metadata") or {}).get("resourceVersion")
            object_part = {k: v for k, v in patch.items() if k != "status"}
            try:
                if object_part:
                    current = await self.patch_object(plural, namespace, name, object_part, version)
                    wrote = True
                    continue
                written = await self.patch_status(plural, namespace, name, patch["status"], version)
                return Written(written, True)
            except Conflict:
                current = await self.get_object(plural, namespace, name)
            except NotFound:
                return None
        raise StillConflicting(f"{plural} {namespace}/{name} kept changing while it was being written")

    async def create_or_get(self, plural: str, namespace: str, body: Body) -> tuple[Body, bool]:
        """Creates the object, or returns the existing one of that name: idempotent by name."""
        try:
            return await self.create_object(plural, namespace, body), True
        except Conflict:
            existing = await self.get_object(plural, namespace, body["metadata"]["name"])
            if existing is None:  # deleted in between; let the caller retry later
                raise
            return existing, False


def _translate(error: ApiException) -> ApiError:
    if error.status == 409:
        return Conflict(str(error.reason))
    if error.status == 404:
        return NotFound(str(error.reason))
    return ApiError(str(error.reason), error.status or None)


def _with_version(body: Mapping[str, Any], resource_version: str | None) -> Body:
    result = dict(body)
    if resource_version:
        result["metadata"] = {**(result.get("metadata") or {}), "resourceVersion": resource_version}
    return result


class KubeClient(WritePolicy):
    """The operator's one Kubernetes client, built once by the app (in-cluster config, else kubeconfig)."""

    def __init__(self, api_client: kubernetes.client.ApiClient | None = None, *,
                 request_timeout: tuple[float, float] = REQUEST_TIMEOUT, threads: int = API_THREADS):
        self._api_client = api_client
        self.request_timeout = request_timeout
        # The official client is synchronous. Its calls get threads of their own, as many as the
        # connection pool has connections: on asyncio's default executor (cpu + 4 = 6 threads
        # here) they queued behind each other and behind every other to_thread user, and an
        # incident step that writes, publishes drafts and records a delivery waited for threads.
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=threads,
                                                               thread_name_prefix="kube-api")

    @property
    def api_client(self) -> kubernetes.client.ApiClient:
        if self._api_client is None:
            try:
                kubernetes.config.load_incluster_config()
            except kubernetes.config.ConfigException:
                kubernetes.config.load_kube_config()
            configuration = kubernetes.client.Configuration.get_default_copy()
            configuration.connection_pool_maxsize = API_THREADS
            self._api_client = kubernetes.client.ApiClient(configuration)
        return self._api_client

    def close(self) -> None:
        if self._api_client is not None:
            self._api_client.close()
            self._api_client = None
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _custom(self) -> kubernetes.client.CustomObjectsApi:
        return kubernetes.client.CustomObjectsApi(self.api_client)

    def _core(self) -> kubernetes.client.CoreV1Api:
        return kubernetes.client.CoreV1Api(self.api_client)

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            call = functools.partial(fn, *args, _request_timeout=self.request_timeout, **kwargs)
            return await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except ApiException as error:
            raise _translate(error) from error
        except urllib3.exceptions.HTTPError as error:  # connection refused/reset, read timeout
            raise Unavailable(type(error).__name__) from error

    # -- the primitives of the write policy --------------------------------------------------------

    async def get_object(self, plural: str, namespace: str, name: str) -> Body | None:
        try:
            return await self._call(self._custom().get_namespaced_custom_object,
                                    GROUP, VERSION, namespace, plural, name)
        except NotFound:
            return None

    async def patch_status(self, plural: str, namespace: str, name: str, status_patch: Mapping[str, Any],
                           resource_version: str | None) -> Body:
        """Merge-patches ``status``; with ``resource_version`` the write fails with Conflict if stale."""
        return await self._call(self._custom().patch_namespaced_custom_object_status,
                                GROUP, VERSION, namespace, plural, name,
                                _with_version({"status": status_patch}, resource_version))

    async def patch_object(self, plural: str, namespace: str, name: str, body: Mapping[str, Any],
                           resource_version: str | None = None) -> Body:
        return await self._call(self._custom().patch_namespaced_custom_object,
                                GROUP, VERSION, namespace, plural, name,
                                _with_version(body, resource_version))

    async def create_object(self, plural: str, namespace: str, body: Body) -> Body:
        return await self._call(self._custom().create_namespaced_custom_object,
                                GROUP, VERSION, namespace, plural, body)

    # -- reads and the other writes ----------------------------------------------------------------

    async def list_objects(self, plural: str, namespace: str | None = None,
                           label_selector: str | None = None) -> list[Body]:
        kwargs = {"label_selector": label_selector} if label_selector else {}
        if namespace:
            result = await self._call(self._custom().list_namespaced_custom_object,
                                      GROUP, VERSION, namespace, plural, **kwargs)
        else:
            result = await self._call(self._custom().list_cluster_custom_object,
                                      GROUP, VERSION, plural, **kwargs)
        return list(result.get("items") or [])

    async def read_secret_key(self, namespace: str, name: str, key: str) -> str:
        secret = await self._call(self._core().read_namespaced_secret, name, namespace)
        data = (secret.data or {}).get(key)
        if data is None:
            raise NotFound(f"Secret {namespace}/{name} has no key {key!r}")
        return base64.b64decode(data).decode()

    async def read_configmap(self, namespace: str, name: str) -> dict[str, str] | None:
        try:
            configmap = await self._call(self._core().read_namespaced_config_map, name, namespace)
        except NotFound:
            return None
        return dict(configmap.data or {})

    async def upsert_configmap(self, namespace: str, name: str, data: dict[str, str],
                               owner: Mapping[str, Any], labels: dict[str, str] | None = None) -> None:
        """Creates or replaces a ConfigMap owned by ``owner`` (garbage-collected with it)."""
        body = configmap_body(namespace, name, data, owner, labels)
        try:
            await self._call(self._core().create_namespaced_config_map, namespace, body)
        except Conflict:
            await self._call(self._core().replace_namespaced_config_map, name, namespace, body)

    async def ensure_peering(self, name: str, namespaces: tuple[str, ...]) -> None:
        """Creates kopf's peering object(s) NAME if missing (``incident-operator --peering NAME``): one
        ClusterKopfPeering for a cluster-wide operator, a KopfPeering in each watched namespace
        otherwise. kopf only patches them (a missing one means no peering, silently); the chart cannot
        ship them next to the CRDs it installs in the same release (their kind is unknown to the API
        server until the CRDs exist). NotFound: kopf's peering CRDs are not installed."""
        body = {"apiVersion": f"{KOPF_GROUP}/{KOPF_VERSION}", "metadata": {"name": name}}
        created: list[tuple[str | None, str, Body]] = (
            [(None, "clusterkopfpeerings", {**body, "kind": "ClusterKopfPeering"})] if not namespaces else
            [(namespace, "kopfpeerings", {**body, "kind": "KopfPeering"}) for namespace in namespaces])
        for namespace, plural, item in created:
            try:
                if namespace is None:
                    await self._call(self._custom().create_cluster_custom_object, KOPF_GROUP, KOPF_VERSION,
                                     plural, item)
                else:
                    await self._call(self._custom().create_namespaced_custom_object, KOPF_GROUP, KOPF_VERSION,
                                     namespace, plural, item)
            except Conflict:
                pass  # it exists: another replica, or an earlier run, made it


def configmap_body(namespace: str, name: str, data: dict[str, str], owner: Mapping[str, Any],
                   labels: dict[str, str] | None = None) -> Body:
    return {
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
