"""The operator's API vocabulary: the one home of every name the Kubernetes objects share.

The API group and version, the plurals and kinds of the three custom resources, every label and
annotation key (all derived from the group), the lifecycle states and priorities with their order,
the named sets of states, the condition types, and the shapes of the three object bodies.

Pure: standard library only (no kopf, kubernetes, aiohttp, prometheus_client), so the domain, the
CLIs and the handlers can all import it. ``tests/unit/test_vocabulary.py`` fails when the group
string or a state or priority literal is typed anywhere else in the package.

``State``, ``Priority``, ``Source`` and ``ConditionType`` are ``StrEnum``: a member *is* its string
(``State.CLOSED == "Closed"``, same hash), so it compares with the plain strings read from objects
and serialises to JSON as that string. (PyYAML's safe dumper refuses ``str`` subclasses: use
``.value`` when a member goes into YAML.)
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final, Mapping, TypedDict

# -- group, version, resources ----------------------------------------------------------------------

GROUP: Final = "incidents.buttercream.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"

INCIDENT_KIND: Final = "Incident"
DETECTION_RULE_KIND: Final = "DetectionRule"
ESCALATION_POLICY_KIND: Final = "EscalationPolicy"
KINDS: Final = (INCIDENT_KIND, DETECTION_RULE_KIND, ESCALATION_POLICY_KIND)

INCIDENTS: Final = "incidents"
DETECTION_RULES: Final = "detectionrules"
ESCALATION_POLICIES: Final = "escalationpolicies"
PLURALS: Final[Mapping[str, str]] = {
    INCIDENT_KIND: INCIDENTS,
    DETECTION_RULE_KIND: DETECTION_RULES,
    ESCALATION_POLICY_KIND: ESCALATION_POLICIES,
}

# -- labels and annotations (every key under the group) ---------------------------------------------

#: On an incident opened by a DetectionRule: the rule's name (at most 63 characters).
RULE_LABEL: Final = f"{GROUP}/rule"
#: On an incident opened by a DetectionRule: the fingerprint of the series group it is about.
FINGERPRINT_LABEL: Final = f"{GROUP}/fingerprint"
#: The incident's service: correlation of alerts and detection rules finds incidents by it.
SERVICE_LABEL: Final = f"{GROUP}/service"
#: On an incident holding alerts of an Alertmanager group: ``<prefix><hash of groupKey>: "true"``.
ALERT_GROUP_LABEL_PREFIX: Final = f"{GROUP}/alert-group-"
#: On the customer drafts ConfigMap: the incident it belongs to.
INCIDENT_LABEL: Final = f"{GROUP}/incident"

#: The earliest time a signal of the incident was seen (may be earlier than its creation).
DETECTED_AT_ANNOTATION: Final = f"{GROUP}/detected-at"
#: Where the incident came from (a :class:`Source`).
SOURCE_ANNOTATION: Final = f"{GROUP}/source"
#: The priority the operator (a DetectionRule or an alert mapping) last set by itself. While
#: ``spec.priority`` still equals it no person has overridden it, and a more severe signal may
#: raise it. The key says "rule-" for history: existing incidents carry it.
OPERATOR_PRIORITY_ANNOTATION: Final = f"{GROUP}/rule-priority"

#: kopf's own bookkeeping (progress, diff base, finalizer) lives under the group, not kopf.zalando.org.
KOPF_PREFIX: Final = GROUP
KOPF_DIFFBASE_KEY: Final = "last-handled-configuration"
KOPF_FINALIZER: Final = f"{GROUP}/kopf-finalizer"

#: The ``schema`` of the hand-off payload posted to webhooks (domain/notify/handoff.py).
HANDOFF_SCHEMA: Final = f"{GROUP}/handoff/v1"


# -- lifecycle states ---------------------------------------------------------------------------------

class State(StrEnum):
    """An incident's lifecycle state (``spec.state``, ``status.state``), in lifecycle order."""

    TRIGGERED = "Triggered"
    ACKNOWLEDGED = "Acknowledged"
    INVESTIGATING = "Investigating"
    MITIGATED = "Mitigated"
    RESOLVED = "Resolved"
    CLOSED = "Closed"


#: Every state, in lifecycle order (the CRD's enum; states move forward).
STATES: Final[tuple[State, ...]] = tuple(State)
#: ``state -> position in the lifecycle``; compare positions, not names.
STATE_INDEX: Final[Mapping[str, int]] = {state.value: index for index, state in enumerate(STATES)}
#: What an incident without ``spec.state`` is (the CRD's default).
INITIAL_STATE: Final = State.TRIGGERED

#: Someone still has to work on it: not yet Resolved (nor Closed). Alerts and spikes join these.
UNRESOLVED: Final[tuple[State, ...]] = STATES[:STATE_INDEX[State.RESOLVED]]
#: Not Closed: Resolved still counts, it is watched for a relapse (the "open incidents" gauge).
NOT_CLOSED: Final[tuple[State, ...]] = STATES[:STATE_INDEX[State.CLOSED]]
#: Resolved or Closed: the incident has a resolution.
RESOLVED_OR_CLOSED: Final[tuple[State, ...]] = (State.RESOLVED, State.CLOSED)
#: Believed under control but not closed: a new firing moves these back to Investigating.
REOPEN_ON_RELAPSE: Final[tuple[State, ...]] = (State.MITIGATED, State.RESOLVED)
#: States a person moves an incident to (every state after the initial one).
AFTER_TRIGGERED: Final[tuple[State, ...]] = STATES[1:]


def state_of(value: object) -> State:
    """``value`` as a :class:`State`; anything missing or unknown counts as the initial state."""
    return State(value) if isinstance(value, str) and value in STATE_INDEX else INITIAL_STATE


def is_at_least(state: object, milestone: State) -> bool:
    """Whether ``state`` has reached ``milestone`` in lifecycle order (unknown counts as initial)."""
    return STATE_INDEX[state_of(state)] >= STATE_INDEX[milestone]


# -- priorities ----------------------------------------------------------------------------------------

class Priority(StrEnum):
    """Incident priority; P1 is the most urgent."""

    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"


#: All priorities, most urgent first.
PRIORITIES: Final[tuple[Priority, ...]] = tuple(Priority)
#: ``priority -> rank``, 1 the most urgent; ``PRIORITY_RANK.get(p, UNKNOWN_PRIORITY_RANK)`` ranks
#: anything unknown below every priority.
PRIORITY_RANK: Final[Mapping[str, int]] = {p.value: rank for rank, p in enumerate(PRIORITIES, start=1)}
UNKNOWN_PRIORITY_RANK: Final = 9
#: The priority of a DetectionRule or alert mapping that sets none.
DEFAULT_PRIORITY: Final = Priority.P3


def priority_rank(priority: object) -> int:
    """1 for P1 .. 4 for P4, :data:`UNKNOWN_PRIORITY_RANK` for anything else."""
    if not isinstance(priority, str):
        return UNKNOWN_PRIORITY_RANK
    return PRIORITY_RANK.get(priority, UNKNOWN_PRIORITY_RANK)


# -- sources and condition types ---------------------------------------------------------------------

class Source(StrEnum):
    """Where an incident came from (``status.source``, :data:`SOURCE_ANNOTATION`)."""

    MANUAL = "Manual"
    DETECTION_RULE = "DetectionRule"
    ALERTMANAGER = "Alertmanager"


SOURCES: Final[tuple[Source, ...]] = tuple(Source)


class ConditionType(StrEnum):
    """The ``type`` of every condition the operator writes."""

    READY = "Ready"  # all three kinds
    DEGRADED = "Degraded"  # DetectionRule: the last evaluation failed
    ACKNOWLEDGED = "Acknowledged"  # Incident
    RESPONSE_ON_TIME = "ResponseOnTime"  # Incident
    RESOLVED = "Resolved"  # Incident
    REVIEW_COMPLETE = "ReviewComplete"  # Incident
    NOTIFIED = "Notified"  # Incident: hand-off delivery
    SAMPLES_DROPPED = "SamplesDropped"  # DetectionRule: the last evaluation refused samples (+Inf, NaN, ...)


# -- object bodies ---------------------------------------------------------------------------------
# The shapes of the objects as the API server returns them (kopf's kopf/_cogs/structs/bodies.py is
# the model). ``total=False``: every key may be absent, so read with ``.get``. Nested blocks the
# operator treats as opaque stay ``dict[str, Any]``; the CRDs in crds/ are the schema.

class OwnerReference(TypedDict, total=False):
    apiVersion: str
    kind: str
    name: str
    uid: str
    controller: bool
    blockOwnerDeletion: bool


class ObjectMeta(TypedDict, total=False):
    name: str
    namespace: str
    uid: str
    generation: int
    resourceVersion: str
    creationTimestamp: str
    deletionTimestamp: str
    labels: dict[str, str]
    annotations: dict[str, str]
    finalizers: list[str]
    ownerReferences: list[OwnerReference]


class Condition(TypedDict, total=False):
    """metav1.Condition."""

    type: str
    status: str  # "True", "False", "Unknown"
    reason: str
    message: str
    lastTransitionTime: str
    observedGeneration: int


class IncidentSpec(TypedDict, total=False):
    title: str
    description: str
    service: str
    team: str
    owner: str
    commander: str
    priority: str
    impact: str
    urgency: str
    startedAt: str
    state: str
    stateChange: dict[str, Any]  # {state, at}: when the person acted (docs/deadlines.md)
    customerImpact: dict[str, Any]
    workaround: str
    resolution: str
    links: list[dict[str, Any]]
    review: dict[str, Any]
    csat: dict[str, Any]


class IncidentStatus(TypedDict, total=False):
    observedGeneration: int
    state: str
    priority: str
    severity: str
    source: str
    startedAt: str
    detectedAt: str
    acknowledgedAt: str
    investigatingAt: str
    mitigatedAt: str
    resolvedAt: str
    closedAt: str
    lastReopenedAt: str
    responseDeadline: str
    resolutionTarget: str
    reopenCount: int
    escalation: dict[str, Any]
    signal: dict[str, Any]
    timeline: list[dict[str, Any]]
    notifications: dict[str, Any]
    drafts: dict[str, Any]
    metrics: dict[str, Any]
    openActionItems: int
    conditions: list[Condition]


class IncidentBody(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: IncidentSpec
    status: IncidentStatus


# ``for`` is a Python keyword, hence the functional form.
DetectionRuleSpec = TypedDict("DetectionRuleSpec", {
    "query": str,
    "interval": str,
    "for": str,
    "cooldown": str,
    "recoveryWindow": str,
    "mode": str,
    "prometheus": dict[str, Any],
    "detector": dict[str, Any],
    "priority": dict[str, Any],
    "incident": dict[str, Any],
    "groupLabels": list[str],
}, total=False)


class DetectionRuleStatus(TypedDict, total=False):
    observedGeneration: int
    lastEvaluationTime: str
    lastSuccessfulEvaluationTime: str
    lastEvaluationDuration: str
    lastError: str
    firingCount: int
    groups: list[dict[str, Any]]
    dryRun: dict[str, Any]
    droppedSamples: dict[str, Any]
    conditions: list[Condition]
    droppedGroups: int
    suppressedIncidents: dict[str, Any]


class DetectionRuleBody(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: DetectionRuleSpec
    status: DetectionRuleStatus


class EscalationPolicySpec(TypedDict, total=False):
    teams: list[str]
    levels: list[dict[str, Any]]
    notifyOnStateChange: list[int]


class EscalationPolicyStatus(TypedDict, total=False):
    observedGeneration: int
    levels: int
    channels: int
    conditions: list[Condition]


class EscalationPolicyBody(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: EscalationPolicySpec
    status: EscalationPolicyStatus
