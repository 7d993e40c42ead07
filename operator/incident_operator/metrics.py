"""Prometheus metrics (placeholder until the metrics module lands)."""

from __future__ import annotations

from typing import Any


def record_outcome(body: dict[str, Any], outcome: Any) -> None:
    return None


# Called by the detection engine (services/detection.py); the metrics module must keep these.
def observe_rule_evaluation(duration_seconds: float, error_reason: str | None) -> None:
    return None


def rule_succeeded(epoch_seconds: float) -> None:
    return None
