"""Every Kubernetes-safe name the operator builds: object names, label keys and label values.

One home, so the rules (lower case, allowed characters, 63 characters for a label value, 253 for
an object name) are applied one way (jupyterhub/kubespawner's ``kubespawner/slugs.py`` is the
model). Incident names are deterministic (creating an incident is idempotent by name, and every
replica must pick the same name), so existing objects depend on each output here: never change one;
``tests/unit/test_names.py`` pins them.

Pure: standard library and :mod:`incident_operator.api` only.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Mapping

from .api import ALERT_GROUP_LABEL_PREFIX

#: A label value, and most things derived from user text, are at most this long.
LABEL_VALUE_MAX = 63
#: An object name (DNS subdomain) is at most this long.
OBJECT_NAME_MAX = 253

_BASE36_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_NOT_LABEL_VALUE = re.compile(r"[^a-z0-9_.-]")
_NOT_NAME_STEM = re.compile(r"[^a-z0-9-]")
_RULE_STEM_MAX = 40
DRAFTS_SUFFIX = "-drafts"


def base36(number: int) -> str:
    """``number`` in base 36 (digits, then a-z); negative numbers count as 0."""
    out, number = "", max(int(number), 0)
    while True:
        number, remainder = divmod(number, 36)
        out = _BASE36_DIGITS[remainder] + out
        if number == 0:
            return out


def label_value(value: object, fallback: str = "") -> str:
    """``value`` as a label value: lower case, ``[a-z0-9_.-]`` (others become ``-``), no leading or
    trailing ``-._``, at most 63 characters; ``fallback`` when nothing is left.

    Also used for an Incident's ``spec.service``/``spec.team`` taken from labels, which the
    correlation then finds by the :data:`~incident_operator.api.SERVICE_LABEL`.
    """
    cleaned = _NOT_LABEL_VALUE.sub("-", str(value).lower()).strip("-._")[:LABEL_VALUE_MAX]
    return cleaned.strip("-._") or fallback


def truncated_label_value(name: str) -> str:
    """An object name used as a label value (rule names are DNS names already): its first 63 characters."""
    return name[:LABEL_VALUE_MAX]


def fits_label_value(name: str) -> bool:
    """Whether ``name`` (already lower-case DNS) can be a label value as it is."""
    return len(name) <= LABEL_VALUE_MAX


# -- incidents opened by DetectionRules ----------------------------------------------------------------

def rule_fingerprint(namespace: str, rule_name: str, group: Mapping[str, str]) -> str:
    """16 hex digits identifying one series group of one rule (the FINGERPRINT_LABEL value)."""
    text = namespace + "/" + rule_name + "\x00" + "\x00".join(f"{k}={v}" for k, v in sorted(group.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def rule_incident_name(rule_name: str, fingerprint: str, episode: int) -> str:
    """``<rule stem>-<6 of the fingerprint>-<episode>``: deterministic per episode, so every replica
    that read the same rule state picks the same name.

    The episode number comes from the group's state in the rule's status, not from a clock, so two
    replicas evaluating a moment apart still agree.
    """
    stem = _NOT_NAME_STEM.sub("-", rule_name.lower())[:_RULE_STEM_MAX].strip("-") or "rule"
    return f"{stem}-{fingerprint[:6]}-{max(int(episode), 1)}"


def rule_episode_of(name: str) -> int:
    """The episode number at the end of a name made by :func:`rule_incident_name` (0 if none)."""
    tail = name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


# -- incidents opened by Alertmanager groups -------------------------------------------------------------

def alert_group_hash(group_key: str) -> str:
    """12 hex digits identifying an Alertmanager group (its ``groupKey``)."""
    return hashlib.sha256(group_key.encode()).hexdigest()[:12]


def alert_group_label(group_key: str) -> str:
    """The label key marking every incident that holds alerts of this group (value "true")."""
    return ALERT_GROUP_LABEL_PREFIX + alert_group_hash(group_key)


def alert_incident_name(group_key: str, episode_start: datetime | None = None) -> str:
    """``am-<hash of groupKey>``; a later episode (after a Closed one) adds its start time in base 36."""
    name = f"am-{alert_group_hash(group_key)}"
    return name if episode_start is None else f"{name}-{base36(int(episode_start.timestamp()))}"


# -- objects beside an incident --------------------------------------------------------------------------

def drafts_configmap_name(incident_name: str) -> str:
    """The ConfigMap holding an incident's customer drafts: ``<incident>-drafts``, shortened with a
    digest when that would exceed an object name's 253 characters."""
    name = incident_name + DRAFTS_SUFFIX
    if len(name) <= OBJECT_NAME_MAX:
        return name
    digest = hashlib.sha256(incident_name.encode()).hexdigest()[:8]
    return f"{incident_name[:OBJECT_NAME_MAX - len(DRAFTS_SUFFIX) - 9]}-{digest}{DRAFTS_SUFFIX}"
