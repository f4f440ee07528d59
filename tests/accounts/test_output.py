"""The outputs rendered without building DRF fields per instance are exactly DRF's field-by-field rendering."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework import serializers

from accounts.serializers import UserOutput, user_data
from sessions_app.models import DeviceSession
from sessions_app.serializers import SessionOutput, SessionsOutput, session_data, sessions_data
from sessions_app.services import session_create
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def drf(serializer_class, instance, **kwargs):
    """What DRF renders for the declared fields (Serializer.to_representation, not our override)."""
    return dict(serializers.ModelSerializer.to_representation(serializer_class(**kwargs), instance))


def test_user_output_is_drfs_rendering():
    verified = UserFactory(name="Zoë \u00e9", role="admin")
    unverified = UserFactory(email_verified_at=None, name="")
    for user in (verified, unverified):
        assert user_data(user) == UserOutput(user).data == drf(UserOutput, user)


def test_session_output_is_drfs_rendering():
    user = UserFactory()
    current = session_create(user=user, remember_me=True, device_id="d-1", device_name="Pixel").session
    other = DeviceSession.objects.create(user=user, ip_address=None, user_agent="Firefox/140",
                                         expires_at=timezone.now() + timedelta(days=1),
                                         absolute_expires_at=timezone.now() + timedelta(days=2),
                                         amr=["pwd", "otp", "mfa"])
    context = {"current_session_id": current.pk}
    for session in (DeviceSession.objects.get(pk=current.pk), other):
        rendered = SessionOutput(session, context=context).data
        assert rendered == drf(SessionOutput, session, context=context)
        assert session_data(session, current=session.pk == current.pk) == rendered
    assert SessionOutput(other, context=context).data["ipAddress"] is None
    assert SessionOutput(current, context=context).data["current"] is True
    rows = [DeviceSession.objects.get(pk=current.pk), other]
    listed = sessions_data(rows, current_session_id=current.pk)
    assert listed == {"sessions": [drf(SessionOutput, row, context=context) for row in rows]}
    assert listed == SessionsOutput({"sessions": rows}, context=context).data
    assert [row["current"] for row in sessions_data(rows, current_session_id=None)["sessions"]] == [False, False]
