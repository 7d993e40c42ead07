"""The one template sandbox (domain/common/sandbox.py): both profiles refuse what would exhaust memory or
time before the value is built, and render ordinary templates unchanged."""

from __future__ import annotations


import pytest

from incident_operator.domain.common import sandbox
from incident_operator.domain.common.sandbox import DOCUMENT, RULE_TEXT, Limits, TemplateError, render
from incident_operator.domain.detection.rules import DEFAULT_TITLE

PROFILES = [pytest.param(RULE_TEXT, id="rule-text"), pytest.param(DOCUMENT, id="document")]

GROWTH = [
    ("{{ ('a' * 10000).replace('a', 'a' * 10000) }}", "replace() would build"),
    ("{{ 'abcdefgh' | replace('', 'x' * 5000) }}", "replace() would build"),
    ("{{ '{:>99999999}'.format(1) }}", "format() would build"),
    ("{{ '%99999999s' | format(1) }}", "format() would build"),
    ("{{ ('x' * 5000).join(range(1000)) }}", "join() would build"),
    ("{{ range(1000) | join('x' * 5000) }}", "join() would build"),
    ("{{ ('\\n' * 5000) | indent(5000) }}", "indent() would build"),
    ("{{ ('\\t' * 5000).expandtabs(5000) }}", "expandtabs() would build"),
    ("{{ 'a'.ljust(999999999) }}", "larger than the template limit"),
    ("{{ 'a' | center(999999999) }}", "larger than the template limit"),
    ("{{ 'a' * 1000000000 }}", "repetition would exceed"),
    ("{{ [1] * 1000000000 }}", "repetition would exceed"),
    ("{{ 2 ** (9 ** 9) }}", "exponent"),
    ("{{ (((2 ** 100) ** 100) ** 100) ** 100 }}", "larger number"),
    ("{{ '%0999999999d' % 1 }}", "format widths this large are refused"),
    ("{{ ''.__class__.__mro__ }}", "unsafe"),
    ("{{ cycler.__init__.__globals__ }}", "unsafe"),
    ("{% set x = [] %}{{ x.append(1) }}", "unsafe"),
]


@pytest.mark.parametrize("limits", PROFILES)
@pytest.mark.parametrize("source, needle", GROWTH)
def test_values_that_would_grow_past_the_cap_are_refused_before_they_are_built(limits, source, needle):
    with pytest.raises(TemplateError) as error:
        render(source, {}, limits)
    assert error.value.reason in ("sandbox", "limit")
    assert needle in error.value.message


@pytest.mark.parametrize("limits", PROFILES)
def test_a_runaway_loop_is_stopped_by_the_operation_budget(limits):
    with pytest.raises(TemplateError) as error:
        render("{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}", {}, limits)
    assert error.value.reason == "limit"
    assert f"more than {limits.max_operations} operations" in error.value.message


@pytest.mark.parametrize("limits", PROFILES)
def test_a_slow_render_is_stopped_by_the_deadline_checked_in_the_operation_counter(limits):
    slow = Limits(max_seconds=0.0, max_operations=10**9, strict_undefined=limits.strict_undefined,
                  document=limits.document)
    with pytest.raises(TemplateError) as error:
        render("{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}", {}, slow)
    assert error.value.reason == "timeout"


def test_long_output_is_an_error_for_documents_and_cut_for_rule_texts():
    source = "{% for i in range(3000) %}abcdefghij{% endfor %}"
    with pytest.raises(TemplateError) as error:
        render(source, {}, DOCUMENT)
    assert "output is longer than 20000" in error.value.message
    text = render(source, {}, RULE_TEXT)
    assert len(text) == RULE_TEXT.max_output and text.startswith("abcdefghij")


def test_ordinary_templates_render_as_before():
    labels = {"topic": "login", "region": "eu"}
    assert render(DEFAULT_TITLE, {"rule": "tickets", "labels": labels}, RULE_TEXT) == \
        "Spike in tickets: region=eu, topic=login"
    assert render("{{ labels.missing }}|{{ value | int }}", {"labels": {}, "value": 7.9}, RULE_TEXT) == "|7"
    assert render("{{ title | upper | center(20) }}", {"title": "down"}, DOCUMENT) == "        DOWN        "
    assert render("{{ 'a-b'.replace('-', ' ') }} {{ ', '.join(['x', 'y']) }}", {}, DOCUMENT) == "a b x, y"
    assert render("{{ items | join(', ') }}", {"items": ["a", "b"]}, DOCUMENT) == "a, b"


def test_profiles_differ_in_strictness_and_block_style():
    with pytest.raises(TemplateError) as error:
        render("{{ servcie }}", {}, DOCUMENT)
    assert error.value.reason == "undefined" and "'servcie' is undefined" in error.value.message
    assert render("{{ servcie }}", {}, RULE_TEXT) == ""
    assert render("{% if true %}\nx\n{% endif %}\n", {}, DOCUMENT) == "x\n"


def test_syntax_errors_name_the_line():
    with pytest.raises(TemplateError) as error:
        render("ok\n{% if %}", {}, RULE_TEXT)
    assert error.value.reason == "syntax" and error.value.lineno == 2
    assert error.value.message.startswith("syntax error at line 2")


def test_both_callers_use_this_sandbox():
    import incident_operator.domain.detection.rules as rules
    import incident_operator.domain.notify.comms as comms

    assert rules.render is sandbox.render and comms.sandbox is sandbox
