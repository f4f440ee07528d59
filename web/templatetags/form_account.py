"""``{% csrf_token %}`` for every template of the site (a template builtin, config/settings.py):
Django's hidden CSRF input, plus the account the form is rendered for (web/form_account.py)."""

from django import template
from django.template.defaulttags import CsrfTokenNode
from django.utils.html import format_html

from web.form_account import FIELD, current_account

register = template.Library()


class FormAccountCsrfTokenNode(CsrfTokenNode):
    def render(self, context):
        html = super().render(context)
        request = context.get("request")
        account = current_account(request) if request is not None and html else None
        if account is None:
            return html
        return html + format_html('<input type="hidden" name="{}" value="{}">', FIELD, account)


@register.tag
def csrf_token(parser, token):
    return FormAccountCsrfTokenNode()
