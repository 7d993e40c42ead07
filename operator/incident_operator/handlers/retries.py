"""How API failures surface in kopf handlers: retryable ones as ``kopf.TemporaryError`` (kopf runs the
handler again after ``delay``), hopeless ones as ``kopf.PermanentError`` (kopf stops retrying
that change; the next change of the object runs the handler again)."""

from __future__ import annotations

import contextlib
from typing import Iterator

import kopf

from ..adapters import kube

# A rival write won: re-running soon sees the object as it is now.
CONFLICT_DELAY_SECONDS = 1.0
# The API did not answer or answered 5xx/429: give it time.
UNAVAILABLE_DELAY_SECONDS = 10.0


@contextlib.contextmanager
def api_failures_for_kopf() -> Iterator[None]:
    try:
        yield
    except kube.Conflict as error:
        raise kopf.TemporaryError(f"the object kept changing: {error}",
                                  delay=CONFLICT_DELAY_SECONDS) from error
    except kube.ApiError as error:
        if error.retryable:
            raise kopf.TemporaryError(f"the API is unavailable: HTTP {error.status or '-'} {error.reason}",
                                      delay=UNAVAILABLE_DELAY_SECONDS) from error
        # 400/403/422: the apiserver refuses what we write (RBAC, schema); retrying cannot help.
        raise kopf.PermanentError(f"the API refused the write: HTTP {error.status} {error.reason}") from error
