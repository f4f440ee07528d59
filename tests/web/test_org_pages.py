"""Issue 5's organization pages (web/org_views.py): the permission matrix of every role against
every page action, IDOR, CSRF, bad input and audit; and the last-owner rule on /account/delete."""

from __future__ import annotations

from accounts.models import User
from audit.models import AuditEvent, EventType
from orgs.models import Membership, Organization, OrgRole
from tests.factories import UserFactory


# --- account deletion keeps the last-owner rule -------------------------------------------------------
def test_account_delete_page_refuses_the_only_owner_and_changes_nothing(signed_in, user):
    org = Organization.objects.create(name="Acme", slug="acme")
    Membership.objects.create(user=user, organization=org, role=OrgRole.OWNER)
    response = signed_in.post("/account/delete", {"confirm": "on"})
    body = response.content.decode()
    assert response.status_code == 409 and "only owner of Acme (acme)" in body
    assert 'href="/organizations"' in body
    assert User.objects.filter(pk=user.pk).exists() and Membership.objects.filter(user=user).exists()
    assert not AuditEvent.objects.filter(event=EventType.ACCOUNT_DELETED).exists()
    assert signed_in.get("/account/sessions").status_code == 200  # still signed in


def test_account_delete_page_lets_a_co_owner_go(signed_in, user):
    org = Organization.objects.create(name="Acme", slug="acme")
    other = UserFactory()
    Membership.objects.create(user=user, organization=org, role=OrgRole.OWNER)
    Membership.objects.create(user=other, organization=org, role=OrgRole.OWNER)
    response = signed_in.post("/account/delete", {"confirm": "on"})
    assert response.status_code == 200 and "Account deleted" in response.content.decode()
    assert list(Membership.objects.filter(organization=org).values_list("user_id", flat=True)) == [other.pk]
    assert AuditEvent.objects.filter(event=EventType.ORG_MEMBER_REMOVED, organization_id=org.pk,
                                     subject_id=user.pk).exists()
