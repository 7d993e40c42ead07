"""How a failed evaluation reads to GitOps tools (kstatus, Argo CD): waiting or stuck.

Prometheus being unreachable, slow or answering 5xx clears up without anyone changing the rule:
the rule is Reconciling (InProgress). A query Prometheus refuses (bad PromQL it cannot run, a
result that is not an instant vector) fails the same way at every interval until someone fixes
the rule: it is Stalled (Failed), so `flux ... --wait` fails fast instead of timing out. The
evaluator retries at every interval in both cases; the next good evaluation clears either.
"""

from __future__ import annotations

TRANSIENT_FAILURES = frozenset({"Unavailable", "Timeout", "BadResponse"})


def failure_progress(
    prometheus_reason: str, condition_reason: str, message: str
) -> dict[str, tuple[str, str]]:
    """Keyword arguments for ``conditions.with_progress`` after a failed evaluation."""
    if prometheus_reason in TRANSIENT_FAILURES:
        return {"reconciling": (condition_reason, f"Retrying at the next interval: {message}")}
    return {"stalled": (condition_reason, message)}
