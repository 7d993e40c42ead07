"""Text people read (titles, descriptions, rendered templates): no invisible or direction-changing characters.

A right-to-left override (U+202E) makes ``"Login OK \u202egnp.exe"`` display differently from
what it says; zero-width characters make two titles look alike that are not; control characters
move the cursor or clear a terminal. What people type is refused by the API server (CEL rules on
the Incident spec, the same character classes as :data:`UNSAFE_SINGLE_LINE` and
:data:`UNSAFE_MULTI_LINE`); what the operator renders itself (rule templates, alert
annotations) is stripped with :func:`strip_unsafe`, so an incident the operator creates is never
refused for it.
"""

from __future__ import annotations

import re

# Bidirectional controls: embeddings/overrides, isolates, marks (LRM, RLM, ALM).
BIDI_CONTROLS = "\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c"
# Zero-width space, non-joiner, joiner, word joiner, byte-order mark / zero-width no-break space.
ZERO_WIDTH = "\u200b-\u200d\u2060\ufeff"
# C0 and C1 controls and DEL; the multi-line form keeps tab, line feed and carriage return.
_CONTROLS_SINGLE_LINE = "\x00-\x1f\x7f-\x9f\u2028\u2029"
_CONTROLS_MULTI_LINE = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"

UNSAFE_SINGLE_LINE = re.compile(f"[{_CONTROLS_SINGLE_LINE}{BIDI_CONTROLS}{ZERO_WIDTH}]")
UNSAFE_MULTI_LINE = re.compile(f"[{_CONTROLS_MULTI_LINE}{BIDI_CONTROLS}{ZERO_WIDTH}]")


def _pattern(multiline: bool) -> re.Pattern[str]:
    return UNSAFE_MULTI_LINE if multiline else UNSAFE_SINGLE_LINE


def unsafe_characters(text: str, *, multiline: bool = False) -> list[str]:
    """The distinct unsafe characters in ``text``, as ``U+XXXX``, in order of appearance."""
    found: list[str] = []
    for match in _pattern(multiline).finditer(text):
        code = f"U+{ord(match.group()):04X}"
        if code not in found:
            found.append(code)
    return found


def strip_unsafe(text: str, *, multiline: bool = False) -> str:
    """``text`` without unsafe characters; in single-line text, line breaks and tabs become spaces."""
    if not multiline:
        text = re.sub(r"[\t\n\r\u2028\u2029]+", " ", text)
    return _pattern(multiline).sub("", text)


def refusal(text: str, field: str, *, multiline: bool = False) -> str | None:
    """A sentence saying why ``text`` is refused for ``field``, or None when it is safe."""
    found = unsafe_characters(text, multiline=multiline)
    if not found:
        return None
    return (f"{field} contains invisible or direction-changing characters ({', '.join(found[:5])}"
            f"{', ...' if len(found) > 5 else ''}): they can make text show something other than what it "
            "says in terminals and chat. Retype it as plain text.")
