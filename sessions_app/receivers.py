"""Framework signals that make cookie-cache snapshots go to the database once (one-liners; see
``cookie_cache.snapshot_invalidate_user``): a change to a user's fields that a snapshot or a token
carries, to one of their organization memberships, or to an organization's session policy, however it
is made (services, admin, shell).
Queryset ``update()`` sends no signal; services that use it call the invalidation themselves."""

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from orgs.models import Membership, Organization
from sessions_app.cookie_cache import snapshot_invalidate_organization, snapshot_invalidate_user

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


@receiver(post_save, sender=Organization, dispatch_uid="sessions_app.organization_saved")
def _organization_saved(sender, instance, created, update_fields=None, **kwargs):
    if not created and (update_fields is None or POLICY_FIELDS & set(update_fields)):
        snapshot_invalidate_organization(instance.pk)  # after the commit
