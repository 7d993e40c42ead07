"""One vocabulary: the API group, the lifecycle states and the priorities are spelled only in api.py.

Every other module of the package uses ``incident_operator.api`` (``GROUP``, ``State``,
``Priority`` and the named sets), so a grep for a state finds one answer, and a new copy that
drifts (a state set meaning something else, a misspelt label) cannot creep in. The check reads the
package's source with ``ast``: every string constant that is not a docstring counts, including the
pieces of f-strings; comments and docstrings are prose and may name anything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

import incident_operator
from incident_operator import api

PACKAGE = Path(incident_operator.__file__).parent
ROOT = PACKAGE.parent.parent
VOCABULARY = PACKAGE / "api.py"

#: The concepts api.py owns, as they would be typed.
OWNED = {api.GROUP, *(s.value for s in api.State), *(p.value for p in api.Priority)}

#: (module path relative to the package, literal) -> why that literal is not the concept. Empty:
#: so far every such literal was the concept (Statuspage's states are lower case and do not match).
ALLOWED: dict[tuple[str, str], str] = {}


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the Constant nodes that are docstrings (module, class, function)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                found.add(id(first.value))
    return found


def offending_literals(source: str, owned: set[str] = OWNED) -> list[tuple[int, str]]:
    """(line, literal) of every string constant in ``source`` that is, or contains, an owned word
    as a whole value (the group also inside a longer string, e.g. a label key)."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    hits = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str) or id(node) in skip:
            continue
        value = node.value
        if value in owned or api.GROUP in value:
            hits.append((node.lineno, value))
    return hits


def package_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p != VOCABULARY)


def test_vocabulary_literals_appear_only_in_api_py():
    found = []
    for path in package_modules():
        relative = str(path.relative_to(PACKAGE))
        for line, literal in offending_literals(path.read_text()):
            if (relative, literal) not in ALLOWED:
                found.append(f"{relative}:{line}: {literal!r}")
    assert not found, "use incident_operator.api instead of these literals:\n" + "\n".join(found)


def test_every_allow_list_entry_is_still_needed():
    for (relative, literal), reason in ALLOWED.items():
        assert reason, f"{relative}: {literal!r} needs a reason"
        assert any(hit == literal for _, hit in offending_literals((PACKAGE / relative).read_text())), \
            f"{relative} no longer types {literal!r}: drop it from ALLOWED"


def test_the_check_sees_literals_and_not_docstrings():
    source = '''
"""Module docstring naming Triggered and P1 and incidents.buttercream.io."""
def f():
    """Closed is fine here."""
    label = "incidents.buttercream.io/rule"
    return {"state": "Resolved", "p": f"{label}", "q": "P4"}
'''
    found = sorted(v for _, v in offending_literals(source))
    assert found == ["P4", "Resolved", "incidents.buttercream.io/rule"]


def test_states_and_priorities_are_the_crds_enums():
    crd = yaml.safe_load((ROOT / "crds" / "incidents.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert [s.value for s in api.STATES] == schema["state"]["enum"]
    assert schema["state"]["default"] == api.INITIAL_STATE
    assert [p.value for p in api.PRIORITIES] == schema["priority"]["enum"]
    assert crd["spec"]["group"] == api.GROUP
    assert [v["name"] for v in crd["spec"]["versions"]] == [api.VERSION]


def test_every_crd_is_named_in_the_vocabulary():
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        names = yaml.safe_load(path.read_text())["spec"]["names"]
        assert api.PLURALS[names["kind"]] == names["plural"]


def test_body_types_name_every_top_level_field_of_the_crds():
    bodies = {"Incident": (api.IncidentSpec, api.IncidentStatus),
              "DetectionRule": (api.DetectionRuleSpec, api.DetectionRuleStatus),
              "EscalationPolicy": (api.EscalationPolicySpec, api.EscalationPolicyStatus)}
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
        spec_type, status_type = bodies[crd["spec"]["names"]["kind"]]
        assert set(spec_type.__annotations__) == set(schema["spec"]["properties"]), path.name
        assert set(status_type.__annotations__) == set(schema["status"]["properties"]), path.name


def test_state_sets_say_what_they_hold():
    S = api.State
    assert api.UNRESOLVED == (S.TRIGGERED, S.ACKNOWLEDGED, S.INVESTIGATING, S.MITIGATED)
    assert api.NOT_CLOSED == api.UNRESOLVED + (S.RESOLVED,)
    assert api.RESOLVED_OR_CLOSED == (S.RESOLVED, S.CLOSED)
    assert "Resolved" in api.NOT_CLOSED and "Resolved" not in api.UNRESOLVED  # members are their strings
    assert api.state_of(None) == api.state_of("Nonsense") == S.TRIGGERED
    assert api.is_at_least("Mitigated", S.ACKNOWLEDGED) and not api.is_at_least("Triggered", S.ACKNOWLEDGED)
    assert api.priority_rank("P1") == 1 and api.priority_rank("P9") == api.priority_rank(None) == 9
