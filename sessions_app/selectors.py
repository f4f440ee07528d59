from django.utils import timezone

from sessions_app.models import DeviceSession


def sessions_active_for(user):
    return DeviceSession.objects.alive(timezone.now()).filter(user=user).order_by("-last_activity_at")


def session_of_user(user, session_id):
    """A live session of ``user`` or None (another user's session is simply not found)."""
    return sessions_active_for(user).filter(pk=session_id).first()
