import uuid

from django.utils import timezone

from sessions_app.models import DeviceSession


def sessions_active_for(user):
    return DeviceSession.objects.alive(timezone.now()).filter(user=user).order_by("-last_activity_at")


def session_of_user(user, session_id):
    """A live session of ``user`` or None (another user's session is simply not found)."""
    return sessions_active_for(user).filter(pk=session_id).first()


def session_for_claims(claims: dict) -> DeviceSession | None:
    """The row behind a verified access token's ``sid`` (with its user and active organization, for
    sessions_app.policy), or None when there is none or it belongs to another user than ``sub``."""
    try:
        sid = uuid.UUID(claims.get("sid"))
    except (ValueError, TypeError, AttributeError):
        return None
    session = DeviceSession.objects.select_related("user", "active_organization").filter(pk=sid).first()
    if session is None or str(session.user_id) != claims.get("sub"):
        return None
    return session
