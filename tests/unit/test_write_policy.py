"""The write policy (adapters/kube.py) against the in-memory API (tests/unit/fakes.py): conditional
writes, recompute on 409, one bound, NotFound, object-then-status writes, create-or-get."""

from __future__ import annotations

import asyncio

import pytest

from incident_operator.adapters import kube
from tests.unit.fakes import FakeKube

NS, NAME = "support", "login"


def scene() -> FakeKube:
    api = FakeKube()
    api.put(kube.INCIDENTS, {"metadata": {"name": NAME, "namespace": NS}, "spec": {"title": "t"},
                             "status": {"count": 0}})
    return api


def increment(current):
    return {"count": (current.get("status") or {}).get("count", 0) + 1}


def test_a_stale_write_is_refused_and_recomputed_from_the_object_as_it_is():
    api = scene()
    stale = api.stored(kube.INCIDENTS, NS, NAME)
    api.rival_status_patch(kube.INCIDENTS, NS, NAME, {"count": 5})
    written = asyncio.run(api.write_status(kube.INCIDENTS, NS, NAME, increment, body=stale))
    assert written.wrote and written.body["status"]["count"] == 6  # computed from the rival's 5, not from 0
    assert api.conflicts == 1


def test_a_rival_between_read_and_write_makes_compute_run_again():
    api = scene()
    calls = []

    def compute(current):
        calls.append(current["status"]["count"])
        return None if current["status"]["count"] >= 1 else {"count": 1}

    api.before_next_write(lambda fake: fake.rival_status_patch(kube.INCIDENTS, NS, NAME, {"count": 1}))
    written = asyncio.run(api.write_status(kube.INCIDENTS, NS, NAME, compute))
    assert calls == [0, 1] and not written.wrote  # the rival already wrote what we wanted
    status_writes = [w for w in api.writes if w[0] == "status"]
    assert status_writes == [("status", kube.INCIDENTS, NAME, {"status": {"count": 1}})]


def test_nothing_to_write_writes_nothing():
    api = scene()
    written = asyncio.run(api.write_status(kube.INCIDENTS, NS, NAME, lambda current: None))
    assert not written.wrote and written.body["status"] == {"count": 0} and api.writes == []


def test_one_bound_on_attempts_then_still_conflicting():
    api = scene()
    api.fail_next_writes(kube.MAX_WRITE_ATTEMPTS)
    with pytest.raises(kube.StillConflicting):
        asyncio.run(api.write_status(kube.INCIDENTS, NS, NAME, increment))
    assert api.conflicts == kube.MAX_WRITE_ATTEMPTS
    api.fail_next_writes(kube.MAX_WRITE_ATTEMPTS - 1)
    assert asyncio.run(api.write_status(kube.INCIDENTS, NS, NAME, increment)).body["status"]["count"] == 1


def test_a_missing_or_deleted_object_is_none():
    api = scene()
    assert asyncio.run(api.write_status(kube.INCIDENTS, NS, "nope", increment)) is None
    body = api.stored(kube.INCIDENTS, NS, NAME)
    api.before_next_write(lambda fake: fake.objects.clear())
    assert asyncio.run(api.write_status(kube.INCIDENTS, NS, NAME, increment, body=body)) is None


def test_object_part_first_then_status_computed_from_the_written_object():
    api = scene()
    seen = []

    def compute(current):
        seen.append(current["spec"].get("state"))
        if current["spec"].get("state") != "Resolved":
            return {"spec": {"state": "Resolved"}}
        if current["status"].get("resolved"):
            return None
        return {"status": {"resolved": True}}

    written = asyncio.run(api.write(kube.INCIDENTS, NS, NAME, compute))
    assert written.wrote and seen == [None, "Resolved"]
    assert written.body["spec"]["state"] == "Resolved" and written.body["status"]["resolved"] is True
    assert written.body["metadata"]["generation"] == 2  # a spec write; the status write is not


def test_every_write_carries_the_resource_version(monkeypatch):
    api = scene()
    versions = []
    original = api.patch_status

    async def spy(plural, namespace, name, patch, resource_version):
        versions.append(resource_version)
        return await original(plural, namespace, name, patch, resource_version)

    monkeypatch.setattr(api, "patch_status", spy)
    asyncio.run(api.write_status(kube.INCIDENTS, NS, NAME, increment))
    assert versions and all(versions)


def test_create_or_get_is_idempotent_by_name():
    api = FakeKube()
    body = {"metadata": {"name": "x", "namespace": NS}, "spec": {"title": "a"}}
    created, new = asyncio.run(api.create_or_get(kube.INCIDENTS, NS, body))
    again, new_again = asyncio.run(api.create_or_get(kube.INCIDENTS, NS, {**body, "spec": {"title": "b"}}))
    assert new and not new_again and again["spec"] == {"title": "a"}
    assert again["metadata"]["uid"] == created["metadata"]["uid"]


def test_api_errors_say_whether_to_retry():
    assert kube.Conflict("x").retryable and kube.Unavailable("x").retryable
    assert kube.ApiError("x", 503).retryable and kube.ApiError("x", 429).retryable
    assert not kube.ApiError("x", 422).retryable and not kube.ApiError("x", 403).retryable
    assert kube.NotFound("x").status == 404


@pytest.mark.parametrize("error, kind, delay", [
    (kube.StillConflicting("x"), "TemporaryError", 1.0),
    (kube.Unavailable("ReadTimeoutError"), "TemporaryError", 10.0),
    (kube.ApiError("Service Unavailable", 503), "TemporaryError", 10.0),
    (kube.ApiError("Unprocessable Entity", 422), "PermanentError", None),
])
def test_kopf_handlers_raise_temporary_or_permanent_errors(error, kind, delay):
    import kopf

    from incident_operator.handlers.retries import api_failures_for_kopf

    with pytest.raises((kopf.TemporaryError, kopf.PermanentError)) as raised:
        with api_failures_for_kopf():
            raise error
    assert type(raised.value).__name__ == kind
    assert getattr(raised.value, "delay", None) == delay
