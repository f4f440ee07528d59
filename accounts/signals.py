"""Signals accounts sends for other apps to react to (they sit above accounts and must not be called
from here: docs/architecture.md)."""

from django.dispatch import Signal

# Sent by accounts.services after a password set (or disabled) or a deactivation saved outside the flows
# (the admin, ``changepassword``, a shell) advanced ``user``'s security version, inside that save's
# transaction, before its audit row. Keyword arguments: ``user``, ``change`` ("password" or
# "deactivated"). A receiver ends what the change ends in its own app and returns how many sessions it
# ended (an int): the audit row of the change counts them (``sessions_revoked``).
security_state_changed = Signal()
