"""How sessions_app reacts to other apps' changes (one-liners; the work is in sessions_app.services and
cookie_cache), however they are made (services, admin, shell):
- cookie-cache snapshots go to the database once (``cookie_cache.snapshot_invalidate_user``) after a
  change to a user's fields that a snapshot or a token carries, to one of their organization
  memberships, or to an organization's session policy;
- a password set or a deactivation saved outside the flows (``accounts.signals.security_state_changed``)
  ends every session of the user;
- an ended membership clears the active organization of the member's sessions with it.
Queryset ``update()`` sends no signal; services that use it call the invalidation themselves."""

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts.signals import security_state_changed
from orgs.models import Membership, Organization
from sessions_app.cookie_cache import snapshot_invalidate_organization, snapshot_invalidate_user
from sessions_app.models import RevokeReason
from sessions_app.services import sessions_organization_leave, sessions_revoke_all

# What a snapshot says about a user (the User JSON, the page user, the token claims).
SNAPSHOT_FIELDS = frozenset({"email", "name", "role", "is_active", "is_staff", "is_superuser", "email_verified_at"})
# What bounds a snapshot's freshness under an organization's session policy.
POLICY_FIELDS = frozenset({"max_session_lifetime_seconds", "idle_timeout_seconds"})


def _invalidate_on_commit(uid) -> None:
    snapshot_invalidate_user(uid)  # published after the commit, with the transaction's other marks


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="sessions_app.user_saved")
def _user_saved(sender, instance, created, update_fields=None, **kwargs):
    if not created and (update_fields is None or SNAPSHOT_FIELDS & set(update_fields)):
        _invalidate_on_commit(instance.pk)


@receiver(post_save, sender=Membership, dispatch_uid="sessions_app.membership_saved")
@receiver(post_delete, sender=Membership, dispatch_uid="sessions_app.membership_deleted")
def _membership_changed(sender, instance, **kwargs):
    _invalidate_on_commit(instance.user_id)


@receiver(post_delete, sender=Membership, dispatch_uid="sessions_app.membership_ended")
def _membership_ended(sender, instance, **kwargs):
    sessions_organization_leave(user_id=instance.user_id, organization_id=instance.organization_id)


@receiver(security_state_changed, dispatch_uid="sessions_app.security_state_changed")
def _security_state_changed(sender, user, change, **kwargs) -> int:
    return sessions_revoke_all(user=user, reason=RevokeReason.ADMIN)  # the count goes into the change's audit row


@receiver(post_save, sender=Organization, dispatch_uid="sessions_app.organization_saved")
def _organization_saved(sender, instance, created, update_fields=None, **kwargs):
    if not created and (update_fields is None or POLICY_FIELDS & set(update_fields)):
        snapshot_invalidate_organization(instance.pk)  # after the commit
