"""Runs kopf with the operator's services (metrics endpoint, notifier, detection engine) around it."""

from __future__ import annotations

import asyncio

import kopf

from .adapters.prometheus import PrometheusClient
from .config import OperatorConfig


async def run(config: OperatorConfig, memo: kopf.Memo, *, namespaces: tuple[str, ...], liveness: str) -> None:
    memo.prometheus = PrometheusClient(max_connections=config.max_concurrent_evaluations * 2)
    # Bounded concurrency of rule evaluations across all rules.
    memo.evaluation_slots = asyncio.Semaphore(config.max_concurrent_evaluations)
    try:
        await kopf.operator(
            clusterwide=not namespaces,
            namespaces=list(namespaces),
            standalone=True,
            liveness_endpoint=liveness,
            memo=memo,
        )
    finally:
        await memo.prometheus.close()
