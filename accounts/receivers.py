"""Framework signals of the User row (one-liners; the work is in accounts.services): a password set or
an account deactivated by any save, outside the flows that handle it themselves (the admin's forms,
``changepassword``, ``set_password`` and ``save()`` in a shell), ends every session, link token and
known device of the user, audited. Queryset ``update()`` sends no signal: code that writes ``password``
or ``is_active`` that way must call ``security_version_bump`` and end the sessions itself."""

from django.conf import settings
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from accounts.services import user_save_check, user_save_settle


@receiver(pre_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="accounts.user_security_state_check")
def _user_saving(sender, instance, raw=False, update_fields=None, **kwargs):
    if not raw:
        user_save_check(user=instance, update_fields=update_fields)


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="accounts.user_security_state_settle")
def _user_saved(sender, instance, raw=False, **kwargs):
    if not raw:
        user_save_settle(user=instance)
