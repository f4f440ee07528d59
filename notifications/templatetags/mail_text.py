"""Filters of the mail templates (templates/emails/): ``{{ organization.name|quoted }}``."""

from django import template

from notifications.text import QUOTED_MAX, mail_quote

register = template.Library()


@register.filter
def quoted(value, max_length=QUOTED_MAX):
    """Text someone other than the recipient chose, in quotes, one line, at most ``max_length``
    characters (notifications/text.py)."""
    return mail_quote(value, max_length=int(max_length))
