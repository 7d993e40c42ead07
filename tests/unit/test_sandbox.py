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


# -- issue 14: each limit, with bounded memory ----------------------------------------------------------

import resource  # noqa: E402

HOSTILE = [
    ("{{ 'x' * 10**8 }}", "repetition would exceed"),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
     "range() of more than"),
    ("{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}", "operations"),
    ("{% set s = 'ab' * 50 %}{{ s.replace('a', s).replace('a', s).replace('a', s) }}",
     "replace() would build"),
    ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "calls nested more than"),
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "unsafe"),
    ("{{ '{:>99999999}'.format(1) }}", "format() would build"),
    ("{{ '%9999s%9999s%9999s' % (1, 2, 3) }}", "% formatting would build"),
    ("{% set a = 'x' * 7000 %}{{ a ~ a ~ a }}", "~ would build"),
    ("{% macro m() %}{% for i in range(10000) %}{{ 'y' * 9000 }}{% endfor %}{% endmacro %}{{ m() | length }}",
     "in all (including macro and block output)"),
    ("{% set x %}{% for i in range(10000) %}" + "y" * 50 + "{% endfor %}{% endset %}{{ x | length }}",
     "in all (including macro and block output)"),
    ("{{ ['x' * 9000] * 1000 }}", "repetition would exceed"),
    ("{{ [[1] * 5000] * 5000 | sum(start=[]) }}", "repetition would exceed"),
    ("{{ 'x'.center(10**8) }}", "larger than the template limit"),
    ("{{ " + "(" * 100 + "1" + ")" * 100 + " }}", "nests more than"),
    ("{{ " + "not " * 500 + "1 }}", "nest"),
    ("{% for a in range(2) %}{% for b in range(2) %}{% for c in range(2) %}{% for d in range(2) %}"
     "{% for e in range(2) %}{% endfor %}{% endfor %}{% endfor %}{% endfor %}{% endfor %}",
     "for-loops nest more than"),
    ("{% include 'other' %}", "include is not available"),
    ("{{ 'x' + 'y' * 9999 + 'z' * 9999 + 'w' * 9999 }}", "+ would build"),
    ("{{ 12345678901234567890 ** 99 }}", "larger number"),
]


@pytest.mark.parametrize("limits", PROFILES)
@pytest.mark.parametrize("source, needle", HOSTILE)
def test_each_limit_refuses_with_a_clear_error_and_bounded_memory(limits, source, needle):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(TemplateError) as error:
        render(source, {"labels": {"topic": "login"}, "value": 3}, limits)
    assert needle in error.value.message, error.value.message
    assert error.value.reason in ("limit", "sandbox", "undefined")
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 50 * 1024, f"peak RSS grew by {grown_kib} KiB"


def test_a_long_source_is_refused_at_compile_time():
    with pytest.raises(TemplateError) as error:
        render("x" * (RULE_TEXT.max_source + 1), {}, RULE_TEXT)
    assert error.value.reason == "limit" and "longer than 4000 characters" in error.value.message
    with pytest.raises(TemplateError) as error:
        render("{{ 1 }}" * 200, {}, Limits(max_nodes=100))
    assert "syntax nodes" in error.value.message


def test_the_shipped_draft_templates_and_the_default_title_are_well_inside_the_limits():
    from incident_operator.domain.notify import comms

    for source in comms.default_templates().values():
        sandbox.compile_template(source, DOCUMENT)  # no LimitExceeded
    assert render(DEFAULT_TITLE, {"rule": "r", "labels": {"a": "1"}}, RULE_TEXT) == "Spike in r: a=1"
