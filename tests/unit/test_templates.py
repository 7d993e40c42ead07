"""Customer-communication drafts (domain/notify/comms.py): each state in the Statuspage vocabulary, custom
templates, and a sandbox that hostile templates or field values cannot escape."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from incident_operator.domain.notify import comms

NOW = datetime(2026, 3, 2, 11, 0, tzinfo=timezone.utc)


def incident(state="Triggered", **spec):
    base = {"title": "Customers cannot log in", "service": "auth", "priority": "P2", "state": state,
            "customerImpact": {"summary": "Customers using SSO cannot log in.", "affectedAccounts": ["a", "b"],
                               "ticketCount": 23},
            "workaround": "Log in with e-mail and password."}
    base.update(spec)
    status = {"state": state, "priority": "P2", "startedAt": "2026-03-02T09:40:00Z",
              "detectedAt": "2026-03-02T09:45:00Z"}
    if state in ("Mitigated", "Resolved", "Closed"):
        status["mitigatedAt"] = "2026-03-02T10:05:00Z"
    if state in ("Resolved", "Closed"):
        status["resolvedAt"] = "2026-03-02T10:20:00Z"
    return {"metadata": {"name": "login", "namespace": "support"}, "spec": base, "status": status}


@pytest.mark.parametrize("state, spec, public", [
    ("Triggered", {}, "investigating"),
    ("Acknowledged", {}, "investigating"),
    ("Investigating", {}, "investigating"),
    ("Investigating", {"resolution": "Rolling back the SSO proxy."}, "identified"),
    ("Mitigated", {}, "monitoring"),
    ("Resolved", {}, "resolved"),
    ("Closed", {}, "resolved"),
])
def test_lifecycle_states_map_to_statuspage_states(state, spec, public):
    assert comms.public_state(state, spec) == public


@pytest.mark.parametrize("state, spec, heading, phrases", [
    ("Triggered", {}, "**Investigating** - Customers cannot log in",
     ["We are investigating a problem affecting auth.", "Customers using SSO cannot log in.",
      "started at about 2026-03-02 09:40 UTC", "**Workaround:** Log in with e-mail and password."]),
    ("Investigating", {"resolution": "Rolled back the SSO proxy."}, "**Identified** - Customers cannot log in",
     ["identified the cause", "working on a fix", "**Workaround:**"]),
    ("Mitigated", {}, "**Monitoring** - Customers cannot log in",
     ["A fix has been implemented at 2026-03-02 10:05 UTC", "monitoring the results", "**Workaround:**"]),
    ("Resolved", {}, "**Resolved** - Customers cannot log in",
     ["resolved as of 2026-03-02 10:20 UTC", "auth is operating normally"]),
])
def test_status_update_for_each_state(state, spec, heading, phrases):
    drafts = comms.render_drafts(incident(state, **spec), NOW)
    text = drafts.texts["status-update"]
    assert text.startswith(heading + "\n")
    for phrase in phrases:
        assert phrase in text, phrase
    if state == "Resolved":
        assert "Workaround" not in text
    assert drafts.errors == []


def test_resolved_incident_gets_a_resolution_notice_and_a_follow_up():
    body = incident("Closed", resolution="Rolled back the SSO proxy.",
                    review={"rootCause": "An expired certificate.",
                            "actionItems": [{"title": "Alert before certificates expire", "owner": "dana"}]})
    drafts = comms.render_drafts(body, NOW)
    assert set(drafts.texts) == {"status-update", "resolution", "follow-up"}
    resolution = drafts.texts["resolution"]
    assert "Between 2026-03-02 09:40 UTC and 2026-03-02 10:20 UTC" in resolution
    assert "The problem lasted 40 minutes." in resolution
    assert "**What we did:** Rolled back the SSO proxy." in resolution
    follow_up = drafts.texts["follow-up"]
    assert "An expired certificate." in follow_up and "- Alert before certificates expire" in follow_up
    payload = comms.statuspage_payload(body, drafts)["incident"]
    assert payload["status"] == "resolved" and payload["impact_override"] == "major"
    assert payload["body"] == resolution


def test_open_incident_only_has_a_status_update():
    assert set(comms.render_drafts(incident("Investigating"), NOW).texts) == {"status-update"}


def test_missing_optional_fields_render_gracefully():
    body = {"metadata": {"name": "x"}, "spec": {"title": "Slow search"}, "status": {"state": "Resolved"}}
    drafts = comms.render_drafts(body, NOW)
    assert "our service" in drafts.texts["status-update"]
    assert "the start of the incident" in drafts.texts["resolution"]
    assert "None" not in "".join(drafts.texts.values())


def test_custom_template_overrides_the_default():
    overrides = {"status-update.md.j2": "{{ public_state_label }}: {{ title }} ({{ affected_account_count }} "
                                        "accounts, {{ ticket_count }} tickets, impact {{ impact }})"}
    drafts = comms.render_drafts(incident(), NOW, overrides)
    assert drafts.texts["status-update"] == "Investigating: Customers cannot log in (2 accounts, 23 tickets, " \
                                            "impact major)\n"


# ----------------------------------------------------------------------------------- hostile input

HOSTILE_TEMPLATES = [
    ("{{ ''.__class__.__mro__ }}", "unsafe"),
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "unsafe"),
    ("{{ cycler.__init__.__globals__ }}", "unsafe"),
    ("{{ joiner.__init__.__globals__.os.system('touch /tmp/pwned') }}", "unsafe"),
    ("{{ lipsum.__globals__['os'].popen('id').read() }}", "'lipsum' is undefined"),  # removed from the globals
    ("{{ namespace.__init__.__globals__ }}", "unsafe"),
    ("{{ title.format.__globals__ }}", "unsafe"),
    ("{% set x = [] %}{{ x.append(1) }}", "unsafe"),  # immutable sandbox: no mutation
    ("{{ self._TemplateReference__context }}", "unsafe"),
    ("{{ 'a' * 1000000000 }}", "output limit"),
    ("{{ 2 ** (9 ** 9) }}", "exponent"),
    ("{{ (((2 ** 100) ** 100) ** 100) ** 100 }}", "larger number"),
    ("{{ '%0999999999d' % 1 }}", "format widths this large are refused"),
    ("{{ 'a'.ljust(999999999) }}", "larger than the template limit"),
    ("{{ 'a' | center(999999999) }}", "larger than the template limit"),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "range() of more than"),
    ("{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}", "operations"),
    ("{% for i in range(10000) %}{{ title }}{% endfor %}", "output is longer"),
    ("{{ servcie }}", "'servcie' is undefined"),
    ("{% if %}", "syntax error at line 1"),
    ("line one\n{{ title | nosuchfilter }}", "nosuchfilter"),
]


@pytest.mark.parametrize("source, expected", HOSTILE_TEMPLATES)
def test_hostile_or_broken_templates_are_refused_with_a_clear_error(source, expected):
    with pytest.raises(comms.DraftError) as error:
        comms.render_template(source, comms.template_context(incident(), NOW), "status-update.md.j2 (test)",
                              seconds=0.5)
    assert str(error.value).startswith("status-update.md.j2 (test): ")
    assert expected in str(error.value)


def test_a_hostile_override_falls_back_to_the_default_and_is_reported():
    overrides = {"status-update.md.j2": "{{ cycler.__init__.__globals__.os.system('id') }}"}
    drafts = comms.render_drafts(incident(), NOW, overrides, override_source="ConfigMap support/comms")
    assert drafts.texts["status-update"].startswith("**Investigating**")
    assert len(drafts.errors) == 1
    assert "status-update.md.j2 (ConfigMap support/comms): refused by the template sandbox" in drafts.errors[0]


@pytest.mark.parametrize("value", [
    "{{ ''.__class__.__mro__ }}",
    "{% for x in range(10**9) %}x{% endfor %}",
    "{{ cycler.__init__.__globals__ }}",
    "${jndi:ldap://x}",
])
def test_hostile_field_values_are_data_not_templates(value):
    body = incident(title=value, workaround=value)
    body["spec"]["customerImpact"]["summary"] = value
    text = comms.render_drafts(body, NOW).texts["status-update"]
    assert text.startswith(f"**Investigating** - {value}\n")
    assert text.count(value) == 3  # printed verbatim, never evaluated


def test_render_limits_do_not_leak_the_trace_hook():
    import sys

    before = sys.gettrace()
    with pytest.raises(comms.DraftError):
        comms.render_template("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
                              {}, "t", seconds=0.1)
    comms.render_template("{{ 1 }}", {}, "t")
    assert sys.gettrace() is before


def test_shipped_templates_exist_for_every_kind():
    templates = comms.default_templates()
    assert set(templates) == {"status-update.md.j2", "resolution.md.j2", "follow-up.md.j2"}
