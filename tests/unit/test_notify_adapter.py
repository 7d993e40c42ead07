"""The Apprise adapter (adapters/notify.py): real sends to a loopback receiver, and errors that
never carry the channel URL; plus the notifier's scheduling helpers (services/notifier.py)."""

from __future__ import annotations

import json

import pytest

from incident_operator.adapters import notify
from incident_operator.services import notifier as svc
from tests.support.receiver import Receiver

PACKET = {"type": "incident.escalated", "key": "escalated-0-1", "incident": {"title": "t"}}


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


def test_json_webhook_gets_markdown_and_the_structured_packet(receiver):
    result = notify.send_sync(receiver.url("/hook"), "[P1] Escalated", "**bold**", "failure", PACKET, timeout=5)
    assert result.ok and result.error is None
    (request,) = receiver.received()
    assert request.path == "/hook"
    assert request.body["title"] == "[P1] Escalated" and request.body["message"] == "**bold**"
    assert request.body["type"] == "failure" and request.body["event"] == "incident.escalated"
    assert request.body["handoff"] == PACKET


def test_http_error_is_reported_without_the_url(receiver):
    receiver.fail_with(500)
    url = f"json://hookuser:s3cr3t-pass@127.0.0.1:{receiver.port}/tok3n-path-xyz"
    result = notify.send_sync(url, "t", "b", "info", PACKET, timeout=5)
    assert not result.ok and "500" in result.error
    for secret in ("s3cr3t-pass", "hookuser", "tok3n-path-xyz", str(receiver.port), "127.0.0.1"):
        assert secret not in result.error


def test_connection_refused_is_reported_without_the_url():
    from tools.devenv.processes import refused_port

    with refused_port() as port:
        result = notify.send_sync(f"json://127.0.0.1:{port}/private", "t", "b", "info", PACKET, timeout=2)
    assert not result.ok and "onnection" in result.error
    assert str(port) not in result.error and "private" not in result.error


def test_invalid_url_is_explained_without_echoing_it():
    result = notify.send_sync("nosuchservice://token-abcdef", "t", "b", "info", PACKET)
    assert not result.ok and "not a valid Apprise URL" in result.error and "token-abcdef" not in result.error
    assert notify.validate_url("json://127.0.0.1:9/x") is None
    assert notify.validate_url("not a url") is not None


def test_redact_removes_every_part_of_the_url():
    url = "jsons://user:p%40ss@hooks.example.com:8443/services/T0/B1/XYZSECRET?token=abc123"
    text = (f"failed for {url}; host hooks.example.com; path /services/T0/B1/XYZSECRET; "
            f"token abc123; password p@ss")
    redacted = notify.redact(text, url)
    for part in ("hooks.example.com", "XYZSECRET", "abc123", "p@ss", "p%40ss", "8443"):
        assert part not in redacted, part
    assert notify.redact("nothing secret here", url) == "nothing secret here"


# ----------------------------------------------------------------------------------- notifier helpers

def test_drafts_are_stale_until_rendered_for_this_state_and_generation():
    body = {"metadata": {"generation": 2}, "status": {"state": "Mitigated"}}
    assert svc.drafts_stale(body)
    body["status"]["drafts"] = {"state": "Mitigated", "observedGeneration": 2}
    assert not svc.drafts_stale(body) and not svc.has_work(body)
    body["metadata"]["generation"] = 3
    assert svc.drafts_stale(body)
    assert not svc.drafts_stale({"metadata": {"generation": 1}, "status": {}})  # not processed yet


def test_drafts_configmap_name_stays_a_valid_name():
    assert svc.drafts_configmap_name("login") == "login-drafts"
    long = svc.drafts_configmap_name("x" * 253)
    assert len(long) <= 253 and long.endswith("-drafts")


def test_packet_and_error_are_json_serialisable():
    json.dumps(notify.SendResult(False, "x").__dict__)
