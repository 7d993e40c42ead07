"""Priority classification: ITIL impact x urgency matrix, explicit priority, severity names."""

from __future__ import annotations

import json

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from incident_operator.domain.incident import priority as prio
from incident_operator.domain.incident.priority import (
    PRIORITIES,
    PRIORITY_MATRIX,
    Impact,
    Priority,
    Urgency,
    effective_priority,
    priority_from_matrix,
    severity_of,
)

FULL_MATRIX = [
    ("High", "High", "P1"),
    ("High", "Medium", "P2"),
    ("High", "Low", "P3"),
    ("Medium", "High", "P2"),
    ("Medium", "Medium", "P3"),
    ("Medium", "Low", "P4"),
    ("Low", "High", "P3"),
    ("Low", "Medium", "P4"),
    ("Low", "Low", "P4"),
]


@pytest.mark.parametrize(("impact", "urgency", "expected"), FULL_MATRIX)
def test_matrix_every_cell(impact: str, urgency: str, expected: str) -> None:
    assert effective_priority(None, impact, urgency) == expected
    assert priority_from_matrix(impact, urgency) == expected
    assert PRIORITY_MATRIX[(impact, urgency)] == expected


def test_matrix_is_complete_and_symmetric() -> None:
    assert len(PRIORITY_MATRIX) == 9
    assert set(PRIORITY_MATRIX) == {(i.value, u.value) for i in Impact for u in Urgency}
    # The ITIL matrix as specified happens to be symmetric, so swapping impact and urgency
    # can never change the outcome; keyword calls pin the documented argument order anyway.
    for (impact, urgency), priority in PRIORITY_MATRIX.items():
        assert PRIORITY_MATRIX[(urgency, impact)] == priority
    assert effective_priority(priority=None, impact="High", urgency="Medium") == "P2"


@pytest.mark.parametrize(
    ("impact", "urgency", "expected"),
    [("high", "HIGH", "P1"), (" Medium ", "low", "P4"), ("LOW", "high", "P3")],
)
def test_matrix_input_is_case_and_blank_insensitive(impact: str, urgency: str, expected: str) -> None:
    assert effective_priority(None, impact, urgency) == expected


@pytest.mark.parametrize("explicit", ["P1", "P2", "P3", "P4"])
def test_explicit_priority_wins_over_matrix(explicit: str) -> None:
    assert effective_priority(explicit, "Low", "Low") == explicit
    assert effective_priority(explicit, "High", "High") == explicit
    assert effective_priority(explicit, None, None) == explicit


def test_explicit_priority_is_normalised() -> None:
    assert effective_priority(" p2 ", None, None) == "P2"


def test_empty_string_priority_means_not_set() -> None:
    assert effective_priority("", "High", "High") == "P1"
    assert effective_priority("  ", "High", "Low") == "P3"


def test_results_are_plain_strings() -> None:
    result = effective_priority(None, "High", "High")
    assert type(result) is str
    assert type(severity_of(result)) is str
    assert json.dumps({"p": result, "s": severity_of(result)}) == '{"p": "P1", "s": "Critical"}'
    assert yaml.safe_dump({"p": result}).strip() == "p: P1"


def test_neither_priority_nor_matrix_raises() -> None:
    with pytest.raises(ValueError, match="impact and urgency are missing"):
        effective_priority(None, None, None)


def test_only_impact_raises_naming_urgency() -> None:
    with pytest.raises(ValueError, match=r"urgency is missing"):
        effective_priority(None, "High", None)
    with pytest.raises(ValueError, match=r"impact is missing"):
        effective_priority(None, "", "High")


def test_invalid_explicit_priority_raises_instead_of_falling_back() -> None:
    with pytest.raises(ValueError, match=r"priority: invalid priority 'P5'"):
        effective_priority("P5", "High", "High")
    with pytest.raises(ValueError, match="priority"):
        effective_priority(1, "High", "High")  # type: ignore[arg-type]


def test_invalid_impact_or_urgency_raises_naming_field() -> None:
    with pytest.raises(ValueError, match=r"impact: invalid value 'Severe'"):
        effective_priority(None, "Severe", "High")
    with pytest.raises(ValueError, match=r"urgency: invalid value 'ASAP'"):
        effective_priority(None, "High", "ASAP")


@pytest.mark.parametrize(
    ("priority", "severity"), [("P1", "Critical"), ("P2", "High"), ("P3", "Medium"), ("P4", "Low")]
)
def test_severity_of(priority: str, severity: str) -> None:
    assert severity_of(priority) == severity
    assert severity_of(priority.lower()) == severity


def test_severity_of_unknown_raises() -> None:
    with pytest.raises(ValueError, match="invalid priority"):
        severity_of("P0")


def test_enums_and_constants() -> None:
    assert PRIORITIES == ("P1", "P2", "P3", "P4")
    assert [p.value for p in Priority] == list(PRIORITIES)
    assert Priority.P1 == "P1"
    assert [i.value for i in Impact] == ["High", "Medium", "Low"]
    assert [u.value for u in Urgency] == ["High", "Medium", "Low"]


def test_docstring_carries_the_matrix_table() -> None:
    doc = prio.__doc__ or ""
    assert "| **High**         | P1   | P2     | P3  |" in doc
    assert "| **Medium**       | P2   | P3     | P4  |" in doc
    assert "| **Low**          | P3   | P4     | P4  |" in doc


_RANK = {"High": 0, "Medium": 1, "Low": 2}


@given(
    st.sampled_from(["High", "Medium", "Low"]),
    st.sampled_from(["High", "Medium", "Low"]),
    st.sampled_from(["High", "Medium", "Low"]),
)
def test_matrix_is_monotonic_in_impact_and_urgency(a: str, b: str, urgency: str) -> None:
    """Raising impact (urgency fixed) never lowers the priority; and symmetrically for urgency."""
    hi, lo = sorted((a, b), key=_RANK.__getitem__)
    assert effective_priority(None, hi, urgency) <= effective_priority(None, lo, urgency)
    assert effective_priority(None, urgency, hi) <= effective_priority(None, urgency, lo)
