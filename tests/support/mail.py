"""The mail a flow sent (``django.core.mail.outbox``) and the one-time token in its link."""

import re

from django.core import mail


def link_token(message) -> str:
    """The token of the one link in a sent email."""
    match = re.search(r"\?token=([A-Za-z0-9_\-]+)", message.body)
    assert match, message.body
    return match.group(1)


def last_mail_to(address):
    sent = [m for m in mail.outbox if address in m.to]
    assert sent, f"no mail to {address}: {[m.to for m in mail.outbox]}"
    return sent[-1]
