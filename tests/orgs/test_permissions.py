"""The permission matrix: every role (owner, admin, member, non-member, anonymous) against every
organization endpoint, and object ids from another organization (IDOR).

Each case runs on a fresh organization with two people in each role. A refused request must change
nothing (the memberships, invitations and organization rows, and the org audit trail, are compared
before and after); an allowed one must make its change and audit it with the organization.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from orgs.models import Invitation, Membership, Organization, OrgRole
from tests.support.errors import error_code
from tests.support.paths import ORGS

ROLES = ["owner", "admin", "member", "nonmember", "anonymous"]
ACTING = {"owner": "owner", "admin": "admin", "member": "member", "nonmember": "outsider", "anonymous": "anonymous"}


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str  # {org}, {target}, {invitation}, {self} are filled in per test
    body: dict | None
    expect: dict  # role -> status
    target: str | None = None  # the member the path names

    def __str__(self):
        return self.name


def _statuses(owner, admin, member, nonmember=404, anonymous=401):
    return {"owner": owner, "admin": admin, "member": member, "nonmember": nonmember, "anonymous": anonymous}


CASES = [
    Case("list-mine", "get", "", None, _statuses(200, 200, 200, 200)),
    Case("create", "post", "", {"name": "New Co"}, _statuses(201, 201, 201, 201)),
    Case("get", "get", "{org}", None, _statuses(200, 200, 200)),
    Case("rename", "patch", "{org}", {"name": "Renamed"}, _statuses(200, 200, 403)),
    Case("set-slug", "patch", "{org}", {"slug": "acme-renamed"}, _statuses(200, 200, 403)),
    Case("set-session-policy", "patch", "{org}", {"sessionPolicy": {"idleTimeoutSeconds": 900}},
         _statuses(200, 403, 403)),
    Case("delete-org", "delete", "{org}", None, _statuses(204, 403, 403)),
    Case("list-members", "get", "{org}/members", None, _statuses(200, 200, 200)),
    Case("member-to-admin", "patch", "{org}/members/{target}", {"role": "admin"}, _statuses(200, 200, 403),
         target="member2"),
    Case("admin-to-member", "patch", "{org}/members/{target}", {"role": "member"}, _statuses(200, 200, 403),
         target="admin2"),
    Case("member-to-owner", "patch", "{org}/members/{target}", {"role": "owner"}, _statuses(200, 403, 403),
         target="member2"),
    Case("owner-to-admin", "patch", "{org}/members/{target}", {"role": "admin"}, _statuses(200, 403, 403),
         target="owner2"),
    Case("remove-member", "delete", "{org}/members/{target}", None, _statuses(204, 204, 403), target="member2"),
    Case("remove-admin", "delete", "{org}/members/{target}", None, _statuses(204, 204, 403), target="admin2"),
    Case("remove-owner", "delete", "{org}/members/{target}", None, _statuses(204, 403, 403), target="owner2"),
    # Leaving: DELETE with the caller's own user id (owners may, while another owner remains).
    Case("leave", "delete", "{org}/members/{self}", None, _statuses(204, 204, 204)),
    Case("list-invitations", "get", "{org}/invitations", None, _statuses(200, 200, 403)),
    Case("invite-member", "post", "{org}/invitations", {"email": "new@example.com", "role": "member"},
         _statuses(201, 201, 403)),
    Case("invite-admin", "post", "{org}/invitations", {"email": "new@example.com", "role": "admin"},
         _statuses(201, 201, 403)),
    Case("invite-owner", "post", "{org}/invitations", {"email": "new@example.com", "role": "owner"},
         _statuses(201, 403, 403)),
    Case("revoke-invitation", "delete", "{org}/invitations/{invitation}", None, _statuses(204, 204, 403)),
]
MUTATING = {c.name for c in CASES if c.method != "get" and c.name not in ("create",)}


def _pending_invitation(org):
    now = timezone.now()
    return Invitation.objects.create(organization=org, email="pending@example.com", role=OrgRole.MEMBER,
                                     token_hash=secrets.token_hex(32), created_at=now,
                                     expires_at=now + timedelta(hours=48))


def _snapshot(org):
    organization = Organization.objects.filter(pk=org.pk).values(
        "name", "slug", "max_session_lifetime_seconds", "idle_timeout_seconds").first()
    return {
        "organization": organization,
        "memberships": sorted(Membership.objects.filter(organization=org).values_list("user_id", "role")),
        "invitations": sorted(Invitation.objects.filter(organization=org).values_list(
            "email", "role", "accepted_at", "revoked_at")),
        "audit": AuditEvent.objects.filter(organization_id=org.pk).count(),
        "all_orgs": Organization.objects.count(),
    }


def _url(case, world, actor_label, invitation):
    self_id = world.uid(actor_label) if actor_label != "anonymous" else world.uid("member")
    return ORGS + case.path.format(org=world.org.pk, target=world.uid(case.target) if case.target else "",
                                   invitation=invitation.pk, self=self_id)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_permission_matrix(world, case, role):
    invitation = _pending_invitation(world.org)
    actor = ACTING[role]
    client = world.client(actor)
    before = _snapshot(world.org)
    response = getattr(client, case.method)(_url(case, world, actor, invitation), case.body, format="json")
    expected = case.expect[role]
    assert response.status_code == expected, (case.name, role, response.status_code, response.content)
    assert response.status_code < 500

    if expected >= 400:
        code = error_code(response, expected)
        assert code == {401: "not_authenticated", 403: "permission_denied", 404: "not_found"}[expected]
        assert _snapshot(world.org) == before, "a refused request changed something"
        return

    after = _snapshot(world.org)
    if case.name in MUTATING:
        assert after != before, "an allowed change did nothing"
        assert after["audit"] > before["audit"], "the change was not audited with the organization"


def test_matrix_covers_every_organization_route():
    """Every (method, route) under /api/v1/orgs/ that takes an organization id is in CASES."""
    from django.urls import get_resolver

    covered = {(c.method, c.path.replace("{target}", "{member}").replace("{self}", "{member}")) for c in CASES}
    routes = {
        "": {"get", "post"}, "{org}": {"get", "patch", "delete"}, "{org}/members": {"get"},
        "{org}/members/{member}": {"patch", "delete"}, "{org}/invitations": {"get", "post"},
        "{org}/invitations/{invitation}": {"delete"},
    }
    for path, methods in routes.items():
        for method in methods:
            assert (method, path) in covered, (method, path)
    orgs_patterns = [p for p in get_resolver().url_patterns if str(p.pattern) == "api/v1/orgs/"]
    # + accept by token, and the caller's own invitations (mine, accept, decline: tests/orgs/test_my_invitations.py)
    assert len(orgs_patterns) == 1 and len(orgs_patterns[0].url_patterns) == len(routes) + 4


# --- IDOR: ids from another organization ------------------------------------------------------------

@pytest.mark.parametrize("method,path,body", [
    ("patch", "{org}/members/{foreign_member}", {"role": "admin"}),
    ("delete", "{org}/members/{foreign_member}", None),
    ("delete", "{org}/invitations/{foreign_invitation}", None),
], ids=["change-foreign-member", "remove-foreign-member", "revoke-foreign-invitation"])
def test_ids_from_another_organization_are_not_found(world, method, path, body):
    """The owner of ``org`` names a member / invitation of ``other`` under their own organization."""
    foreign_invitation = _pending_invitation(world.other)
    before = (_snapshot(world.org), _snapshot(world.other))
    url = ORGS + path.format(org=world.org.pk, foreign_member=world.uid("outsider"),
                             foreign_invitation=foreign_invitation.pk)
    response = getattr(world.client("owner"), method)(url, body, format="json")
    assert error_code(response, 404) == "not_found"
    assert (_snapshot(world.org), _snapshot(world.other)) == before


@pytest.mark.parametrize("method,path,body", [
    ("get", "{other}", None),
    ("patch", "{other}", {"name": "Mine now"}),
    ("delete", "{other}", None),
    ("get", "{other}/members", None),
    ("patch", "{other}/members/{other_member}", {"role": "owner"}),
    ("delete", "{other}/members/{other_member}", None),
    ("get", "{other}/invitations", None),
    ("post", "{other}/invitations", {"email": "x@example.com", "role": "owner"}),
    ("delete", "{other}/invitations/{other_invitation}", None),
])
def test_an_owner_of_one_organization_gets_404_for_everything_in_another(world, method, path, body):
    other_invitation = _pending_invitation(world.other)
    before = _snapshot(world.other)
    url = ORGS + path.format(other=world.other.pk, other_member=world.uid("outsider"),
                             other_invitation=other_invitation.pk)
    response = getattr(world.client("owner"), method)(url, body, format="json")
    assert error_code(response, 404) == "not_found"
    assert _snapshot(world.other) == before


def test_an_unknown_organization_and_a_foreign_one_answer_alike(world):
    import uuid

    client = world.client("owner")
    unknown = client.get(f"{ORGS}{uuid.uuid4()}")
    foreign = client.get(f"{ORGS}{world.other.pk}")
    assert unknown.status_code == foreign.status_code == 404
    assert unknown.json() == foreign.json()


def test_the_list_shows_only_the_callers_organizations_with_their_role(world):
    body = world.client("admin").get(ORGS).json()
    assert [(o["id"], o["role"]) for o in body["organizations"]] == [(str(world.org.pk), "admin")]
    body = world.client("outsider").get(ORGS).json()
    assert [(o["id"], o["role"]) for o in body["organizations"]] == [(str(world.other.pk), "member")]
