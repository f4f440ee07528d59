"""Text that people chose (their name, an organization's name, a device name) inside our mail.

Such text reaches a mail only through ``outbox_enqueue`` (notifications/services.py), which renders
every template through ``mail_context``: whatever string a template reads is passed through
``mail_text`` first. So a name can never

- forge a header or end the subject line: it is one line, with no control characters;
- start a paragraph of its own that reads like our instructions: line breaks become spaces;
- carry a working link: ``https://`` becomes ``https[:]//`` (mail clients link only the former);
- reorder what is displayed around it: bidirectional overrides are removed;
- fill the mail: it is cut at ``TEXT_MAX`` characters.

Templates put text that someone other than the recipient chose in quotes with the ``quoted`` filter
(``{% load mail_text %}``), and subjects take such text only through ``subject_values``, quoted
the same way. Our own links are the one exception to the cut and the defanging: a context key named
``link`` or ending in ``_link`` holds a URL we built (still made one line).
"""

from __future__ import annotations

import datetime
import decimal
import re
import unicodedata
from collections.abc import Mapping

from core.fields import BIDI_CONTROLS

TEXT_MAX = 254  # a whole email address fits; names are capped lower where they are entered
QUOTED_MAX = 80  # one name inside a sentence or a subject
SUBJECT_MAX = 150
LINK_MAX = 2048
ELLIPSIS = "…"
QUOTES = ("“", "”")

_WHITESPACE = re.compile(r"\s+")
_SCHEME = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*):/{2}")
_PLAIN_TYPES = (bool, int, float, decimal.Decimal, datetime.date, datetime.time, datetime.timedelta)


def single_line(value, *, max_length: int) -> str:
    """``value`` as one line: control characters, line/paragraph separators and bidirectional
    overrides removed, every run of whitespace one space, cut at ``max_length`` (with "…")."""
    text = "" if value is None else str(value)
    text = "".join(" " if ch.isspace() else ch for ch in text
                   if ch.isspace() or (unicodedata.category(ch) not in ("Cc", "Cs", "Zl", "Zp")
                                       and ch not in BIDI_CONTROLS))
    text = _WHITESPACE.sub(" ", text).strip()
    if len(text) > max_length:
        text = text[:max_length - 1].rstrip() + ELLIPSIS
    return text


def mail_text(value, *, max_length: int = TEXT_MAX) -> str:
    """Text someone chose, made safe to print in a mail (see the module docstring)."""
    return single_line(_SCHEME.sub(r"\1[:]//", "" if value is None else str(value)), max_length=max_length)


def mail_quote(value, *, max_length: int = QUOTED_MAX) -> str:
    """``mail_text`` in typographic quotes; quote marks inside become ``'`` so the text cannot
    close the quote and go on as if it were ours."""
    inner = mail_text(value, max_length=max_length)
    for mark in ("“", "”", '"', "„", "«", "»"):
        inner = inner.replace(mark, "'")
    return f"{QUOTES[0]}{inner}{QUOTES[1]}"


def mail_subject(subject: str, values: Mapping | None = None) -> str:
    """Our subject line with ``{name}`` placeholders filled by quoted ``values``; one line, capped."""
    if values:
        subject = subject.format(**{key: mail_quote(value) for key, value in values.items()})
    return single_line(subject, max_length=SUBJECT_MAX)


class MailObject:
    """A read-only view of an object for a mail template: attributes only (templates read data,
    they never call methods), every string through ``mail_text``."""

    __slots__ = ("_wrapped",)

    def __init__(self, wrapped):
        object.__setattr__(self, "_wrapped", wrapped)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        value = getattr(self._wrapped, name)
        if callable(value):
            raise AttributeError(f"{name} is a method: mail templates read data only")
        return mail_value(value)

    def __setattr__(self, name, value):
        raise AttributeError("read-only")

    def __str__(self):
        return mail_text(str(self._wrapped))


def mail_value(value, *, key: str = ""):
    """One context value made safe for a mail template (strings cleaned, containers and objects
    wrapped so what a template reads from them is cleaned too)."""
    if value is None or isinstance(value, _PLAIN_TYPES):
        return value
    if isinstance(value, str):
        if key == "link" or key.endswith("_link"):
            return single_line(value, max_length=LINK_MAX)
        return mail_text(value)
    if isinstance(value, Mapping):
        return {str(k): mail_value(v, key=str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mail_value(v) for v in value]
    return MailObject(value)


def mail_context(context: Mapping) -> dict:
    return {str(key): mail_value(value, key=str(key)) for key, value in context.items()}
