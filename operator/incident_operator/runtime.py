"""Runs kopf with the operator's services (metrics endpoint, notifier, detection engine) around it."""

from __future__ import annotations

import kopf

from .config import OperatorConfig


async def run(config: OperatorConfig, memo: kopf.Memo, *, namespaces: tuple[str, ...], liveness: str) -> None:
    await kopf.operator(
        clusterwide=not namespaces,
        namespaces=list(namespaces),
        standalone=True,
        liveness_endpoint=liveness,
        memo=memo,
    )
