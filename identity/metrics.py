"""The signing key's gauges, read when /metrics is scraped (core/metrics.py)."""

from __future__ import annotations

from django.utils import timezone

from core.metrics import gauge
from identity.app_settings import app_settings
from identity.models import SigningKey


def signing_key_gauges():
    now = timezone.now()
    signer = SigningKey.objects.signing_at(now).first()
    yield gauge("mana_auth_signing_key_age_seconds", "How long the current signing key has been signing "
                "(0 before the first key exists).",
                (now - signer.activates_at).total_seconds() if signer is not None else 0.0)
    yield gauge("mana_auth_signing_key_rotation_interval_seconds", "The scheduled rotation interval "
                "(IDENTITY KEY_ROTATION_DAYS): an age above it means rotation is not running.",
                app_settings.KEY_ROTATION_INTERVAL.total_seconds())
