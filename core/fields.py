"""Strict JSON fields: a string must be a JSON string, a boolean a JSON boolean, a number an integer;
and the one parser of whole numbers written as text (query parameters, page forms, headers).

DRF's own fields coerce (``123`` becomes ``"123"``, ``"yes"`` becomes ``True``); an auth API
should refuse wrong types with a clear message instead of guessing.
"""

import unicodedata
from datetime import UTC

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from core.errors import ApiError

# Characters that reorder the text around them (Unicode bidirectional embeddings, overrides and
# isolates): in a name they can make "moc.elpmaxe" display as "example.com" (CVE-2021-42574).
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
SINGLE_LINE_MESSAGE = "Must be a single line of text: no line breaks, tabs or other control characters."


def single_line_validator(value: str) -> None:
    """Names and other short text of ours that may reach mail subjects, bodies and headers: one line,
    no control characters (Cc: CR, LF, tab, NUL...), no line or paragraph separators (Zl, Zp) and no
    bidirectional overrides. Raises Django's ValidationError, which DRF fields and page forms both
    turn into a field error."""
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ch in BIDI_CONTROLS:
            raise DjangoValidationError(SINGLE_LINE_MESSAGE, code="not_single_line")


class StrictCharField(serializers.CharField):
    default_error_messages = {
        "not_a_string": "Must be a string.",
        "bad_unicode": "Must be valid Unicode text.",
    }

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string")
        try:
            data.encode("utf-8")  # lone surrogates from JSON escapes cannot be stored
        except UnicodeEncodeError:
            self.fail("bad_unicode")
        return super().to_internal_value(data)


class OneTimeCodeField(StrictCharField):
    """A code of an authenticator app: six ASCII digits (spaces people type between groups are dropped).
    Anything else is a validation error, not a wrong guess: it can never be right, so it is not counted."""

    default_error_messages = {"not_a_code": "Enter the 6-digit code (digits only)."}

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 16)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data).replace(" ", "")
        if value and not (len(value) == 6 and value.isascii() and value.isdigit()):
            self.fail("not_a_code")
        return value


class RecoveryCodeField(StrictCharField):
    """A recovery code as printed (``k7mz2-p9xqe``): letters and digits, a dash or spaces allowed."""

    default_error_messages = {"not_a_code": "Enter a recovery code as it was shown (like k7mz2-p9xqe)."}

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 32)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        letters = value.replace("-", "").replace(" ", "")
        if value and not (8 <= len(letters) <= 16 and letters.isascii() and letters.isalnum()):
            self.fail("not_a_code")
        return value


class SingleLineCharField(StrictCharField):
    """A name or label: a JSON string, one line (``single_line_validator``), at most ``max_length``."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators.append(single_line_validator)


class OrganizationNameField(SingleLineCharField):
    """An organization's name, at most 100 characters (``orgs.models.Organization.name``): asked by
    ``register-b2b`` (accounts) and the organization endpoints (orgs), which must not import each
    other's serializers."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 100)
        super().__init__(**kwargs)


class StrictEmailField(serializers.EmailField, StrictCharField):
    default_error_messages = {**StrictCharField.default_error_messages, "invalid": "Enter a valid email address."}

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 254)
        super().__init__(**kwargs)


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class PasswordField(StrictCharField):
    """Shape only (a string, bounded); the policy (12 to 128 and the validators) is the service's."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 4096)
        kwargs.setdefault("trim_whitespace", False)
        kwargs.setdefault("style", {"input_type": "password"})
        super().__init__(**kwargs)


# --- whole numbers --------------------------------------------------------------------------------
# The one parser of integers that come as text (query parameters, page forms, headers). Python's
# int() and str.isdigit() accept much more than a client means: "²" passes isdigit() and then makes
# int() raise (a 500), "١٢" (Arabic-Indic) and "１２" (full width) parse, as do "-1", "+1", " 1", "1_0",
# and a 5,000-digit string raises inside int(). Here only ASCII digits count, and a value is bounded
# before it is converted.

def ascii_int(text, *, maximum: int) -> int | None:
    """The value of ``text`` when it is one or more ASCII digits (nothing else: no sign, space, "_",
    exponent or other script), else None. A value above ``maximum`` comes back as ``maximum + 1``
    without ever converting a long string, so callers tell "not a number" from "too large"."""
    if not isinstance(text, str) or not text or not text.isascii() or not text.isdigit():
        return None
    significant = text.lstrip("0") or "0"
    if len(significant) > len(str(maximum)):
        return maximum + 1
    return min(int(significant), maximum + 1)


def int_param(value, *, name: str, default: int, minimum: int, maximum: int) -> int:
    """A whole-number query parameter: ``default`` when it is absent; otherwise ASCII digits from
    ``minimum`` to ``maximum``, else 400 ``validation_error`` naming the parameter (an empty value
    is not absent: ``?page=`` is refused like ``?page=x``)."""
    if value is None:
        return default
    number = ascii_int(value, maximum=maximum)
    if number is None or not minimum <= number <= maximum:
        raise ApiError("Invalid query parameter.", code="validation_error",
                       fields={name: [f"A whole number from {minimum} to {maximum}."]})
    return number


class StrictIntegerField(serializers.IntegerField):
    """A JSON number that is an integer (not a string, float or boolean), within min/max when given;
    ``MAX_VALUE`` bounds it when the caller gives no maximum, so no size of number reaches a service."""

    MAX_VALUE = 2**31 - 1
    default_error_messages = {"invalid": "Must be a whole number."}

    def __init__(self, **kwargs):
        kwargs.setdefault("max_value", self.MAX_VALUE)
        kwargs.setdefault("min_value", -self.MAX_VALUE)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return data


class StrictUUIDField(serializers.UUIDField):
    """A UUID as a JSON string (DRF's own field also takes integers)."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


_DATETIME = serializers.DateTimeField()


def datetime_output(value):
    """A datetime as every output serializer renders it (DRF's DateTimeField: ISO 8601 in the current time
    zone, ``Z`` for UTC), for outputs rendered without building fields (``accounts.serializers.user_data``).
    A UTC value (every row PostgreSQL returns) is written directly when TIME_ZONE is UTC: the same text as
    DRF's, without its look-up of the current time zone (an asgiref Local, most of DRF's 15 us per value; a
    sessions list renders three per row). The service never activates another time zone
    (tests/core/test_fields.py holds the two renderings equal and checks that nothing activates one)."""
    if value is None:
        return None
    if getattr(value, "tzinfo", None) is UTC and settings.TIME_ZONE == "UTC":
        return value.isoformat()[:-6] + "Z"
    return _DATETIME.to_representation(value)
