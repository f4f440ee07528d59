"""core.fields.datetime_output renders exactly what DRF's DateTimeField renders."""

import subprocess
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from rest_framework import serializers

from core.fields import datetime_output

ROOT = Path(__file__).resolve().parents[2]
VALUES = [
    datetime(2026, 12, 2, 15, 0, 0, tzinfo=UTC),
    datetime(2026, 12, 2, 15, 0, 0, 123456, tzinfo=UTC),
    datetime(2026, 12, 2, 15, 0, 0, 1, tzinfo=UTC),
    datetime(2026, 12, 2, 16, 30, 0, 500, tzinfo=timezone(timedelta(hours=1, minutes=30))),  # another offset
    datetime(1, 1, 1, tzinfo=UTC),
]


@pytest.mark.parametrize("value", VALUES)
def test_the_direct_rendering_is_drfs(value):
    assert datetime_output(value) == serializers.DateTimeField().to_representation(value)


def test_none_is_none():
    assert datetime_output(None) is None


def test_another_time_zone_setting_takes_drfs_rendering(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    value = VALUES[1]
    assert datetime_output(value) == serializers.DateTimeField().to_representation(value) == \
        "2026-12-02T16:00:00.123456+01:00"


def test_nothing_activates_another_time_zone():
    """datetime_output's shortcut relies on it: the current time zone is always TIME_ZONE."""
    found = subprocess.run(["git", "grep", "-n", "-E", r"timezone\.(activate|override)\(", "--",
                            "*.py", ":!tests"], cwd=ROOT, capture_output=True, text=True)
    assert found.returncode == 1, found.stdout
