"""Strict JSON fields: a string must be a JSON string, a boolean a JSON boolean.

DRF's own fields coerce (``123`` becomes ``"123"``, ``"yes"`` becomes ``True``); an auth API
should refuse wrong types with a clear message instead of guessing.
"""

from rest_framework import serializers


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
