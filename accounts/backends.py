"""The password check of a sign-in (AUTHENTICATION_BACKENDS, after axes' lock check)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend


class LoginBackend(ModelBackend):
    """Django's ModelBackend (the password, ``is_active``, the permissions), except that a caller which
    already loaded the account passes the rows it found for the address as ``candidates`` (none or
    one): security.lockout.login_authenticate reads the account and its lockout state in one statement
    (issue 15), so the password is checked on that row instead of a second lookup. No row: the same
    hash work as a wrong password, as ModelBackend does for an unknown username."""

    def authenticate(self, request, username=None, password=None, candidates=None, **kwargs):
        if candidates is None:
            return super().authenticate(request, username=username, password=password, **kwargs)
        if password is None:
            return None
        if not candidates:
            get_user_model()().set_password(password)  # the hash work of a wrong password
            return None
        user = candidates[0]
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None
