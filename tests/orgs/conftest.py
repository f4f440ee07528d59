"""Organizations with people in every role (bearer clients for them: tests/support/auth.py ``signed_in``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from rest_framework.test import APIClient

from orgs.models import Membership, Organization, OrgRole
from tests.factories import UserFactory
from tests.support.auth import signed_in

# Old names, importable from here for tests written before the helpers moved to tests/support/
# (other branches may still add such imports); new tests import from tests/support.
from tests.support.auth import bearer as bearer_client  # noqa: F401
from tests.support.errors import error_code as error  # noqa: F401
from tests.support.paths import ORGS, SWITCH  # noqa: F401


@dataclass
class World:
    """``org`` with two people in each role, ``other`` (another organization with its own owner and
    member), and an ``outsider`` who belongs to ``other`` only."""

    org: Organization
    other: Organization
    users: dict = field(default_factory=dict)

    def client(self, label):
        if label == "anonymous":
            return APIClient()
        return signed_in(self.users[label])

    def uid(self, label) -> str:
        return str(self.users[label].pk)


@pytest.fixture
def world(db) -> World:
    users = {label: UserFactory(email=f"{label}@example.com") for label in
             ("owner", "owner2", "admin", "admin2", "member", "member2", "outsider", "other_owner")}
    org = Organization.objects.create(name="Acme", slug="acme")
    for label, role in (("owner", OrgRole.OWNER), ("owner2", OrgRole.OWNER), ("admin", OrgRole.ADMIN),
                        ("admin2", OrgRole.ADMIN), ("member", OrgRole.MEMBER), ("member2", OrgRole.MEMBER)):
        Membership.objects.create(user=users[label], organization=org, role=role)
    other = Organization.objects.create(name="Other", slug="other")
    Membership.objects.create(user=users["other_owner"], organization=other, role=OrgRole.OWNER)
    Membership.objects.create(user=users["outsider"], organization=other, role=OrgRole.MEMBER)
    return World(org=org, other=other, users=users)
