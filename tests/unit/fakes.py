"""An in-memory Kubernetes API for unit tests of services (the ``KubeApi`` protocol, adapters/kube.py).

It emulates what the services rely on from a real apiserver: resourceVersion preconditions (a
write carrying a stale version fails with Conflict, 409), NotFound (404), JSON merge patches
(RFC 7386: ``None`` deletes a key) of the object and of its status subresource (status writes
never touch spec; spec writes bump ``metadata.generation``), create refusing an existing name,
and label selectors (``k=v`` and ``k``). The write policy itself is the real one
(``kube.WritePolicy``): the fake only provides its primitives.

Conflicts on purpose: :meth:`FakeKube.before_next_write` runs a rival's change just before the
next write reaches the store (so the write that was computed from the older version conflicts),
and :meth:`FakeKube.fail_next_writes` makes writes conflict without any change.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any, Callable, Mapping

from incident_operator.adapters import kube

Key = tuple[str, str, str]  # (plural or "configmaps"/"secrets", namespace, name)


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class FakeKube(kube.WritePolicy):
    def __init__(self) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.configmaps: dict[tuple[str, str], dict[str, Any]] = {}
        self.secrets: dict[tuple[str, str], dict[str, str]] = {}
        self.writes: list[tuple[str, str, str, dict[str, Any]]] = []  # (what, plural, name, patch) applied
        self.conflicts = 0  # 409s answered
        self._versions = itertools.count(100)
        self._rivals: list[list[Any]] = []  # [writes still to let through, rival]
        self._failures = 0

    # -- setting the scene ---------------------------------------------------------------------------

    def put(self, plural: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Stores ``body`` as if created (fresh resourceVersion, generation 1 unless given)."""
        stored = copy.deepcopy(dict(body))
        meta = stored.setdefault("metadata", {})
        meta.setdefault("generation", 1)
        meta.setdefault("uid", f"uid-{meta['name']}")
        meta["resourceVersion"] = str(next(self._versions))
        stored.setdefault("apiVersion", f"{kube.GROUP}/{kube.VERSION}")
        self.objects[(plural, meta["namespace"], meta["name"])] = stored
        return copy.deepcopy(stored)

    def stored(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.objects[(plural, namespace, name)])

    def before_next_write(self, rival: Callable[["FakeKube"], None], *, after: int = 0) -> None:
        """Runs ``rival`` (a write of someone else, or a failure it raises) right before the next
        write is applied, or before the one after ``after`` further writes."""
        self._rivals.append([after, rival])

    def fail_next_writes(self, count: int) -> None:
        """The next ``count`` conditional writes answer 409 although nothing changed."""
        self._failures += count

    def rival_status_patch(self, plural: str, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        """A write by someone else, unconditional (as a rival replica's winning write)."""
        self._apply(plural, namespace, name, {"status": dict(patch)}, None, status=True)

    # -- the primitives of the write policy ----------------------------------------------------------

    async def get_object(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get((plural, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    async def patch_status(self, plural: str, namespace: str, name: str, status_patch: Mapping[str, Any],
                           resource_version: str | None) -> dict[str, Any]:
        return self._write(plural, namespace, name, {"status": dict(status_patch)}, resource_version,
                           status=True)

    async def patch_object(self, plural: str, namespace: str, name: str, body: Mapping[str, Any],
                           resource_version: str | None = None) -> dict[str, Any]:
        return self._write(plural, namespace, name, dict(body), resource_version, status=False)

    async def create_object(self, plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        if (plural, namespace, name) in self.objects:
            raise kube.Conflict(f"{plural} {namespace}/{name} already exists")
        created = self.put(plural, {**body, "metadata": {**body["metadata"], "namespace": namespace}})
        self.writes.append(("create", plural, name, copy.deepcopy(body)))
        return created

    # -- reads and other writes ----------------------------------------------------------------------

    async def list_objects(self, plural: str, namespace: str | None = None,
                           label_selector: str | None = None) -> list[dict[str, Any]]:
        wanted = [part.strip() for part in (label_selector or "").split(",") if part.strip()]

        def selected(body: Mapping[str, Any]) -> bool:
            labels = (body.get("metadata") or {}).get("labels") or {}
            for term in wanted:
                key, _, value = term.partition("=")
                if key not in labels or ("=" in term and labels[key] != value):
                    return False
            return True

        return [copy.deepcopy(body) for (p, ns, _), body in sorted(self.objects.items())
                if p == plural and (namespace is None or ns == namespace) and selected(body)]

    async def read_secret_key(self, namespace: str, name: str, key: str) -> str:
        secret = self.secrets.get((namespace, name))
        if secret is None or key not in secret:
            raise kube.NotFound(f"Secret {namespace}/{name} key {key}")
        return secret[key]

    async def read_configmap(self, namespace: str, name: str) -> dict[str, str] | None:
        found = self.configmaps.get((namespace, name))
        return dict(found["data"]) if found is not None else None

    async def upsert_configmap(self, namespace: str, name: str, data: dict[str, str],
                               owner: Mapping[str, Any], labels: dict[str, str] | None = None) -> None:
        self.configmaps[(namespace, name)] = kube.configmap_body(namespace, name, data, owner, labels)

    # -- internals -----------------------------------------------------------------------------------

    def _write(self, plural: str, namespace: str, name: str, patch: dict[str, Any],
               resource_version: str | None, *, status: bool) -> dict[str, Any]:
        due = [entry for entry in self._rivals if entry[0] == 0]
        for entry in self._rivals:
            entry[0] -= 1
        self._rivals = [entry for entry in self._rivals if entry[0] >= 0]
        for _, rival in due:
            rival(self)
        if self._failures and resource_version:
            self._failures -= 1
            self.conflicts += 1
            raise kube.Conflict("injected conflict")
        return self._apply(plural, namespace, name, patch, resource_version, status=status)

    def _apply(self, plural: str, namespace: str, name: str, patch: dict[str, Any],
               resource_version: str | None, *, status: bool) -> dict[str, Any]:
        current = self.objects.get((plural, namespace, name))
        if current is None:
            raise kube.NotFound(f"{plural} {namespace}/{name}")
        if resource_version and resource_version != current["metadata"]["resourceVersion"]:
            self.conflicts += 1
            raise kube.Conflict(f"{plural} {namespace}/{name}: the object has been modified")
        if status:
            updated = dict(current)
            updated["status"] = merge_patch(current.get("status") or {}, patch.get("status") or {})
        else:
            patch = {k: v for k, v in patch.items() if k != "status"}  # the main resource ignores status
            meta_patch = {k: v for k, v in (patch.get("metadata") or {}).items() if k != "resourceVersion"}
            updated = merge_patch(current, {**patch, "metadata": meta_patch})
            if updated.get("spec") != current.get("spec"):
                updated["metadata"]["generation"] = int(current["metadata"].get("generation") or 1) + 1
        updated["metadata"] = dict(updated["metadata"])
        updated["metadata"]["resourceVersion"] = str(next(self._versions))
        self.objects[(plural, namespace, name)] = updated
        self.writes.append(("status" if status else "object", plural, name, copy.deepcopy(patch)))
        return copy.deepcopy(updated)
