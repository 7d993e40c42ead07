"""Prometheus metrics (placeholder until the metrics module lands)."""

from __future__ import annotations

from typing import Any


def record_outcome(body: dict[str, Any], outcome: Any) -> None:
    return None
