"""Metrics end to end: incidents driven through their lifecycle on the real control plane, the
operator process scraped by the real Prometheus, every dashboard panel's query run against it,
then a SIGKILL and a fresh process that must not observe anything twice."""

from __future__ import annotations

import pytest

import importlib.util
import json
import time
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from incident_operator.metrics import DURATION_BUCKETS

from tests.support.kubectl import GROUP, VERSION, incident
from tools.devenv.processes import free_port, refused_port, wait_until

REPO = Path(__file__).resolve().parents[2]
NEW_SERIES_DELAY = 2  # seconds; the session Prometheus scrapes every second
REVIEW = {
    "timelineNotes": "Spike of login tickets at 10:02, rollback at 10:40.",
    "rootCause": "An expired signing key.",
    "detection": "Detected from tickets; a certificate-expiry alert would have been earlier.",
    "communication": "Status page updated twice.",
    "actionItems": [{"title": "Alert on key expiry", "owner": "ann"},
                    {"title": "Runbook for key rotation", "owner": "bob", "done": True}],
}


def load_dashboard() -> dict:
    spec = importlib.util.spec_from_file_location("dashboard_generator", REPO / "dashboards" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return json.loads(module.dashboard_json())


def panel_queries(board: dict) -> list[tuple[str, str, str]]:
    found = []
    for panel in board["panels"]:
        for target in panel.get("targets") or []:
            found.append((panel["title"], target["refId"], target["expr"]))
    return found


def substitute(expr: str, range_s: int, priority: str = ".*", service: str = ".*") -> str:
    for name, value in (("$__rate_interval", "30s"), ("$__range", f"{range_s}s"), ("$job", ".+"),
                        ("$priority", priority), ("$service", service), ("$slo_window", f"{range_s}s")):
        expr = expr.replace(name, value)
    assert "$" not in expr, expr
    return expr


def by(result: list[dict], label: str | None = None, legend: str | None = None) -> dict[str, float]:
    """{label value: sample value}; ``legend`` renders Grafana's {{label}} legend instead."""
    values = {}
    for item in result:
        metric = item["metric"]
        if legend is not None:
            key = legend
            for name, value in metric.items():
                key = key.replace("{{" + name + "}}", value)
        else:
            key = metric.get(label, "") if label else ""
        values[key] = float(item["value"][1])
    return values


def near(value: float, expected: float) -> bool:
    """Within 10 % (and within 0.45 for small counts): increase() extrapolates a series that ended
    inside the range (the killed process) by half a scrape interval relative to its life, so a
    count of 15 from a series scraped 15 times reads 15.5 here; in a real deployment series live
    hours and the effect vanishes. A double count would be off by 100 %."""
    return abs(value - expected) <= max(0.1 * abs(expected), 0.45 if float(expected).is_integer() else 0)


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def sample(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_status(kubectl, name, predicate, timeout=30, what="status"):
    def check():
        obj = kubectl.get("incident", name)
        return obj if obj and predicate(obj.get("status") or {}) else None
    return wait_until(check, timeout, interval=0.1, what=f"{name}: {what}")


def observed(*names):
    return lambda s: set(names) <= set((s.get("metrics") or {}).get("observed") or [])


def rule(name: str, **spec) -> dict:
    body = {
        "query": 'sum by (topic) (increase(support_tickets_created_total{topic="no-such-topic"}[10s]))',
        "interval": "1s",
        "detector": {"type": "threshold", "threshold": {"value": 15}},
        "incident": {"title": "Spike of {{ labels.topic }} tickets"},
        **spec,
    }
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "DetectionRule", "metadata": {"name": name},
            "spec": body}


def operator_config(prometheus, allowed_urls: tuple[str, ...] = ()) -> dict:
    return {
        "prometheus": {"url": prometheus.url},
        # A rule's own Prometheus URL must be allow-listed (docs/tenant-limits.md).
        "detection": {"allowedPrometheusURLs": list(allowed_urls)},
        "deadlines": {"response": {"P1": "3s"}, "escalationInterval": {"P1": "3s"}, "maxEscalationLevel": 1},
        "metrics": {"port": free_port(), "newSeriesDelay": f"{NEW_SERIES_DELAY}s"},
    }


class Panels:
    """Runs every panel query of the dashboard and checks it against expectations."""

    def __init__(self, prometheus, started: float):
        self.prometheus = prometheus
        self.started = started
        self.queries = panel_queries(load_dashboard())

    def run(self, **variables) -> dict[tuple[str, str], list[dict]]:
        range_s = int(time.time() - self.started) + 5
        return {(title, ref): self.prometheus.query(substitute(expr, range_s, **variables))
                for title, ref, expr in self.queries}

    def check(self, expectations: dict, timeout: float = 45, **variables) -> dict:
        missing = {(t, r) for t, r, _ in self.queries} - set(expectations)
        assert not missing, f"panel queries without an expectation: {sorted(missing)}"

        def attempt():
            results = self.run(**variables)
            failures = []
            for key, expect in expectations.items():
                try:
                    expect(results[key])
                except AssertionError as error:
                    failures.append(f"{key}: {error} (got {results[key]})")
            if failures:
                raise AssertionError("; ".join(failures))
            return results
        return wait_until(attempt, timeout, interval=1, what=f"dashboard panels {variables or ''}")


def expect_equal(label=None, legend=None, **values):
    def check(result):
        got = by(result, label, legend)
        assert set(got) == set(values), f"series {sorted(got)} != {sorted(values)}"
        for key, value in values.items():
            assert near(got[key], value), f"{key}={got[key]} != {value}"
    return check


def expect_between(label=None, legend=None, **bounds):
    def check(result):
        got = by(result, label, legend)
        assert set(got) == set(bounds), f"series {sorted(got)} != {sorted(bounds)}"
        for key, (low, high) in bounds.items():
            assert low <= got[key] <= high, f"{key}={got[key]} not in [{low}, {high}]"
    return check


def expect_up(target):
    def check(result):
        mine = [float(item["value"][1]) for item in result if item["metric"].get("target") == target]
        assert 1.0 in mine, f"{target} is not up: {mine}"
    return check


def bucket_floor(value: float) -> float:
    return max([0.0] + [b for b in DURATION_BUCKETS if b < value])


def bucket_ceiling(value: float) -> float:
    return min(b for b in DURATION_BUCKETS if b >= max(value, 1e-9))


# Known flake (about 1 run in 3 under CI load, 2026-11-27, when incidents were synced by kopf
# handlers and per-incident daemons): before any restart, the first-contact-resolution ratio read
# 1/2 instead of 1/3, one increment of incidents_resolved_total missing from Prometheus' increase().
# Not explained. Since incidents go through one queue (services/incident_queue.py) it passed 9 runs
# of 9 without re-runs (`pytest -o addopts= -p no:rerunfailures -k dashboard`); the one re-run stays
# until a cause is found or it has stayed quiet in CI for a while.
@pytest.fixture
def unreachable_port():
    """A port that refuses connections for the whole test (held by us, never listening)."""
    with refused_port() as port:
        yield port


@pytest.mark.flaky(reruns=1)
def test_dashboard_panels_show_the_lifecycle_and_survive_a_sigkill(kubectl, start_operator, prometheus,
                                                                    unreachable_port):
    started = time.time()
    target = "incident-operator-" + uuid.uuid4().hex[:6]
    operator = start_operator(operator_config(prometheus, (f"http://127.0.0.1:{unreachable_port}",)))
    prometheus.add_target(target, f"127.0.0.1:{operator.metrics_port}")
    prometheus.wait_for_target_up(target)
    panels = Panels(prometheus, started)

    # Detection health: one rule that evaluates fine, one whose Prometheus is unreachable.
    kubectl.apply(rule("quiet"))
    kubectl.apply(rule("broken", prometheus={"url": f"http://127.0.0.1:{unreachable_port}"}))

    back_dated = (datetime.now(timezone.utc) - timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    kubectl.apply(incident("login", priority="P2", service="auth", startedAt=back_dated))
    kubectl.apply(incident("checkout-down", priority="P1", service="checkout"))
    kubectl.apply(incident("slow-auth", priority="P3", service="auth", owner="carol", state="Resolved"))
    recurring = incident("recurring", priority="P4", service="checkout")
    recurring["metadata"]["annotations"] = {"incidents.buttercream.io/source": "DetectionRule"}
    kubectl.apply(recurring)
    items = [{"title": "a", "owner": "dave"}, {"title": "b", "owner": "erin"},
             {"title": "c", "owner": "fay", "done": True}]
    kubectl.apply(incident("cart-errors", priority="P3", service="checkout", owner="dave",
                           state="Acknowledged", review={"actionItems": items}))

    # P2 acknowledged ~3 s after detection.
    login = wait_status(kubectl, "login", lambda s: s.get("detectedAt"))
    detected = datetime.fromisoformat(login["status"]["detectedAt"].replace("Z", "+00:00")).timestamp()
    time.sleep(max(detected + 3.2 - time.time(), 0))
    kubectl.patch("incident", "login", {"spec": {"state": "Acknowledged", "owner": "alice"}})

    # P1 breaches its 3 s deadline and escalates; the alerting gauge sees it while unacknowledged.
    wait_status(kubectl, "checkout-down", lambda s: (s.get("escalation") or {}).get("level") == 1,
                what="level 1")
    unacked = next(expr for title, _, expr in panels.queries if title == "Unacknowledged past deadline")
    wait_until(lambda: by(prometheus.query(substitute(unacked, 60)), "priority").get("P1") == 1, 20,
               what="P1 unacknowledged past deadline in Prometheus")
    kubectl.patch("incident", "checkout-down", {"spec": {"state": "Acknowledged", "owner": "bob"}})

    # P3 resolved at once, reopened (a regression), resolved again, closed: not first contact.
    wait_status(kubectl, "slow-auth", lambda s: s.get("resolvedAt"))
    kubectl.patch("incident", "slow-auth", {"spec": {"state": "Investigating"}})
    wait_status(kubectl, "slow-auth", lambda s: s.get("reopenCount") == 1)
    kubectl.patch("incident", "slow-auth", {"spec": {"state": "Resolved"}})
    wait_status(kubectl, "slow-auth", lambda s: s.get("resolvedAt"))
    kubectl.patch("incident", "slow-auth", {"spec": {"state": "Closed"}})

    # The detection engine writes the evidence after creating the incident: a recurrence.
    wait_status(kubectl, "recurring", lambda s: s.get("detectedAt"))
    kubectl.patch("incident", "recurring", {"status": {"signal": {"fingerprint": "f00",
                                                                  "previousIncident": "recurring-1"}}},
                  subresource="status")

    wait_status(kubectl, "login", lambda s: s.get("acknowledgedAt"))
    kubectl.patch("incident", "login", {"spec": {"state": "Resolved"}})
    wait_status(kubectl, "login", lambda s: s.get("resolvedAt"))
    kubectl.patch("incident", "login", {"spec": {"state": "Closed", "review": REVIEW,
                                                 "csat": {"score": 4, "responses": 10}}})
    wait_status(kubectl, "checkout-down", lambda s: s.get("acknowledgedAt"))
    kubectl.patch("incident", "checkout-down", {"spec": {"state": "Resolved"}})
    wait_status(kubectl, "checkout-down", lambda s: s.get("resolvedAt"))
    kubectl.patch("incident", "checkout-down", {"spec": {"state": "Closed", "review": REVIEW,
                                                         "csat": {"score": 2, "responses": 5}}})

    for name in ("login", "checkout-down"):
        wait_status(kubectl, name, observed("opened", "detect", "acknowledge", "mitigate", "resolve",
                                            "resolved-fcr", "csat"), what="all observed")
    wait_status(kubectl, "slow-auth", observed("resolved-fcr"), what="FCR observed")
    wait_status(kubectl, "recurring", observed("recurrence"), what="recurrence observed")
    statuses = {name: kubectl.get("incident", name)["status"]
                for name in ("login", "checkout-down", "slow-auth")}
    assert statuses["slow-auth"]["metrics"]["observed"].count("resolve") == 1

    def seconds(status, end, start):
        parse = lambda v: datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()  # noqa: E731
        return parse(status[end]) - parse(status[start])

    login_mttr = seconds(statuses["login"], "resolvedAt", "startedAt")
    p1_mtta = seconds(statuses["checkout-down"], "acknowledgedAt", "detectedAt")
    p1_mttr = seconds(statuses["checkout-down"], "resolvedAt", "startedAt")
    assert 3 <= p1_mtta < 30

    def durations(mean: dict) -> dict:
        """One duration panel: the mean within ``mean[priority]`` bounds; p50 and p90 within the
        histogram buckets holding those bounds (histogram_quantile interpolates inside a bucket)."""
        checks = {"A": expect_between(legend="{{priority}} mean",
                                      **{f"{p} mean": b for p, b in mean.items()})}
        for ref, q in (("B", "p50"), ("C", "p90")):
            checks[ref] = expect_between(legend="{{priority}} " + q, **{
                f"{p} {q}": (bucket_floor(low), bucket_ceiling(high)) for p, (low, high) in mean.items()})
        return checks

    def expectations(after_restart: bool) -> dict:
        p3_open = not after_restart
        expected = {
            ("Open incidents", "A"): expect_equal(**{"": 1 if after_restart else 2}),
            ("Unacknowledged past deadline", "A"): expect_equal(label="priority", P1=0, P2=0, P3=0, P4=0),
            ("Open review action items", "A"): expect_equal(**{"": 4}),
            ("Open incidents by priority and state", "A"): expect_equal(
                legend="{{priority}} {{state}}",
                **{"P4 Triggered": 1, ("P3 Acknowledged" if p3_open else "P3 Resolved"): 1}),
            ("Open incidents over time", "A"): expect_equal(
                label="priority", P1=0, P2=0, P3=1 if p3_open else 0, P4=1),
            ("Incidents opened", "A"): expect_equal(label="source", Manual=4, DetectionRule=1),
            ("Response deadline breaches", "A"): expect_equal(label="priority", P1=1, P2=0, P3=0, P4=0),
            ("Response deadline breaches", "B"): expect_equal(**{"": 1 / 5}),
            ("Escalations", "A"): expect_equal(label="level", **{"1": 1}),
            ("First-contact resolution", "A"): expect_equal(**{"": 1 / 3}),
            ("First-contact resolution", "B"): expect_equal(label="priority", P1=0, P2=1, P3=0),
            ("Recurrence", "A"): expect_equal(**{"": 1 / 5}),
            ("Recurrence", "B"): expect_equal(**{"": 1}),
            ("Recurrence", "C"): expect_equal(**{"": 1}),
            # Responses: checkout-down (P1) missed its 3 s deadline; login (P2), slow-auth and
            # cart-errors (P3, opened already acknowledged) met theirs; recurring (P4) is still due.
            ("Responses on time (SLI) and objective", "A"): expect_equal(
                legend="{{priority}} on time", **{"P1 on time": 0, "P2 on time": 1, "P3 on time": 1}),
            ("Responses on time (SLI) and objective", "B"): expect_equal(
                legend="{{priority}} objective",
                **{f"{p} objective": 0.95 for p in ("P1", "P2", "P3", "P4")}),
            ("Error budget remaining", "A"): expect_equal(label="priority", P1=1 - 1 / 0.05, P2=1, P3=1),
            ("Error budget burn rate", "A"): expect_equal(
                legend="{{priority}} 1h", **{"P1 1h": 1 / 0.05, "P2 1h": 0, "P3 1h": 0}),
            ("Error budget burn rate", "B"): expect_equal(
                legend="{{priority}} 6h", **{"P1 6h": 1 / 0.05, "P2 6h": 0, "P3 6h": 0}),
            ("CSAT", "A"): expect_equal(**{"": 3}),
            ("CSAT", "B"): expect_equal(**{"": 15}),
            ("Rule evaluations", "A"): expect_between(**{"": (0.2, 10)}),
            ("Rule evaluations", "B"): expect_between(
                label="reason", Unavailable=(0.2, 10), Timeout=(0, 0), QueryFailed=(0, 0), BadResponse=(0, 0),
                Other=(0, 0), TooManySeries=(0, 0), Invalid=(0, 0)),
            ("Rule evaluation duration", "A"): expect_between(**{"": (0, 10)}),
            ("Rule evaluation duration", "B"): expect_between(**{"": (0, 10)}),
            ("Since last successful evaluation", "A"): expect_between(**{"": (0, 15)}),
            ("Operator", "A"): expect_up(target),
            ("Operator", "B"): expect_equal(label="version", **{_version(): 1}),
        }
        mttd = {"P1": (0, 1), "P2": (55, 75), "P3": (0, 1), "P4": (0, 1)}
        mtta = {"P1": (p1_mtta - 0.5, p1_mtta + 0.5), "P2": (2, 10), "P3": (0, 2)}
        ttm = {"P1": (p1_mttr - 0.5, p1_mttr + 0.5), "P2": (login_mttr - 0.5, login_mttr + 0.5), "P3": (0, 2)}
        mttr = dict(ttm)
        if after_restart:
            # cart-errors was resolved by the new process: P3 now averages two incidents.
            ttm["P3"] = mttr["P3"] = (0, 120)
        for title, mean in (("MTTD: time to detect by priority", mttd),
                            ("MTTA: time to acknowledge by priority", mtta),
                            ("Time to mitigate by priority", ttm),
                            ("MTTR: time to resolve by priority", mttr)):
            for ref, check in durations(mean).items():
                expected[(title, ref)] = check
        return expected

    panels.check(expectations(after_restart=False))
    # The service variable narrows the duration panels: only the P2 and P3 incidents were "auth".
    results = panels.run(service="auth")
    assert set(by(results[("MTTA: time to acknowledge by priority", "A")], "priority")) == {"P2", "P3"}
    assert 2 <= by(results[("MTTA: time to acknowledge by priority", "A")], "priority")["P2"] <= 10
    assert set(by(panels.run(priority="P2")[("Incidents opened", "A")], "source")) == {"Manual"}

    # -- SIGKILL and a fresh process -----------------------------------------------------------------------
    before = scrape(operator.metrics_url)
    for priority, service in (("P2", "auth"), ("P1", "checkout"), ("P3", "auth")):
        assert sample(before, "incident_time_to_resolve_seconds_count",
                      priority=priority, service=service) == 1
    operator.kill()
    replacement = start_operator(operator_config(prometheus, (f"http://127.0.0.1:{unreachable_port}",)),
                                 name="restarted")
    prometheus.add_target(target, f"127.0.0.1:{replacement.metrics_port}")

    def gauges_rebuilt():
        now = scrape(replacement.metrics_url)
        return now if sample(now, "incidents_open", priority="P4", state="Triggered") == 1 else None

    after = wait_until(gauges_rebuilt, 30, what="gauges rebuilt from the index")
    time.sleep(NEW_SERIES_DELAY + 1)  # anything wrongly observed again would be applied by now
    after = scrape(replacement.metrics_url)
    for priority, service in (("P2", "auth"), ("P1", "checkout"), ("P3", "auth"), ("P4", "checkout"),
                              ("P3", "checkout")):
        for name in ("detect", "acknowledge", "mitigate", "resolve"):
            count = sample(after, f"incident_time_to_{name}_seconds_count",
                           priority=priority, service=service)
            assert count == 0, (name, priority, service)
        for source in ("Manual", "DetectionRule"):
            assert sample(after, "incidents_opened_total",
                          priority=priority, service=service, source=source) == 0
    for priority in ("P1", "P2", "P3", "P4"):
        for name in ("incident_deadline_breaches_total", "incident_reopens_total",
                     "incident_recurrences_total", "incident_csat_score_count",
                     "incident_csat_responses_total"):
            assert sample(after, name, priority=priority) == 0, (name, priority)
        for fcr in ("true", "false"):
            assert sample(after, "incidents_resolved_total", priority=priority, first_contact=fcr) == 0
        for result in ("met", "missed"):
            assert sample(after, "incident_responses_total", priority=priority, result=result) == 0
    open_now = {(dict(labels)["priority"], dict(labels)["state"]): value
                for (name, labels), value in after.items() if name == "incidents_open" and value}
    assert open_now == {("P4", "Triggered"): 1, ("P3", "Acknowledged"): 1}
    items = {dict(labels)["priority"]: value for (name, labels), value in after.items()
             if name == "incident_action_items_open"}
    assert items == {"P1": 1, "P2": 1, "P3": 2, "P4": 0}

    # A transition after the restart is observed once, by the new process only.
    kubectl.patch("incident", "cart-errors", {"spec": {"state": "Resolved"}})
    wait_status(kubectl, "cart-errors", observed("resolve"))
    wait_until(lambda: sample(scrape(replacement.metrics_url), "incident_time_to_resolve_seconds_count",
                              priority="P3", service="checkout") == 1, 20, what="P3 resolve observed")
    final = scrape(replacement.metrics_url)
    assert sample(final, "incident_time_to_acknowledge_seconds_count", priority="P3", service="checkout") == 0
    assert sample(final, "incident_time_to_resolve_seconds_count", priority="P3", service="auth") == 0

    # Over the whole range (both processes) every panel still shows each incident once.
    prometheus.wait_for_target_up(target)
    panels.check(expectations(after_restart=True))


def _version() -> str:
    from importlib.metadata import version

    return version("incident-operator")
