"""Creating, reading, renaming and deleting organizations; slugs; the response shape; audit rows."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent, EventType
from orgs.models import Membership, Organization, OrgRole
from orgs.services import organization_create
from tests.factories import UserFactory
from tests.support.auth import signed_in
from tests.support.errors import error_code
from tests.support.paths import ORGS

ORG_KEYS = {"id", "name", "slug", "createdAt", "role", "sessionPolicy"}


@pytest.fixture
def client(user):
    return signed_in(user)


def test_create_makes_the_caller_owner(client, user):
    r = client.post(ORGS, {"name": "  Acme Corp  "}, format="json")
    assert r.status_code == 201, r.content
    body = r.json()
    assert set(body) == ORG_KEYS
    assert body["name"] == "Acme Corp" and body["slug"] == "acme-corp" and body["role"] == "owner"
    assert body["sessionPolicy"] == {"maxSessionLifetimeSeconds": None, "idleTimeoutSeconds": None}
    membership = Membership.objects.get(organization_id=body["id"])
    assert membership.user == user and membership.role == OrgRole.OWNER
    row = AuditEvent.objects.get(event=EventType.ORG_CREATED)
    assert str(row.organization_id) == body["id"] and row.actor_id == user.pk
    assert row.context["slug"] == "acme-corp"


def test_the_url_without_a_trailing_slash_works_too(client):
    r = client.post("/api/v1/orgs", {"name": "No Slash"}, format="json")
    assert r.status_code == 201 and r.json()["slug"] == "no-slash"
    assert client.get("/api/v1/orgs").json()["organizations"][0]["slug"] == "no-slash"


@pytest.mark.parametrize("name,slug", [
    ("Café Zürich", "cafe-zurich"),
    ("Ünïcödé & Co.", "unicode-co"),
    ("東京株式会社", "org"),
    ("🚀🚀🚀", "org"),
    ("--Hello--World--", "hello-world"),
    ("x" * 100, "x" * 42),
])
def test_slugs_are_ascii_and_never_empty(user, name, slug):
    assert organization_create(user=user, name=name).organization.slug == slug


def test_slugs_are_deduplicated(user):
    slugs = [organization_create(user=user, name="Acme").organization.slug for _ in range(4)]
    assert slugs == ["acme", "acme-2", "acme-3", "acme-4"]
    assert organization_create(user=user, name="東京").organization.slug == "org"
    assert organization_create(user=user, name="大阪").organization.slug == "org-2"


def test_a_chosen_slug_that_is_taken_is_a_conflict(client, user):
    organization_create(user=user, name="First", slug="acme")
    r = client.post(ORGS, {"name": "Second", "slug": "acme"}, format="json")
    assert error_code(r, 409) == "slug_taken"
    assert Organization.objects.count() == 1
    r = client.post(ORGS, {"name": "Second", "slug": "acme-two"}, format="json")
    assert r.status_code == 201 and r.json()["slug"] == "acme-two"


@pytest.mark.parametrize("slug", ["Acme", "acme corp", "acme--corp", "-acme", "acme-", "ácme", "a" * 51, ""])
def test_a_malformed_slug_is_refused(client, slug):
    r = client.post(ORGS, {"name": "Acme", "slug": slug}, format="json")
    assert error_code(r, 400) == "validation_error"
    assert "slug" in r.json()["error"]["fields"]
    assert not Organization.objects.exists()


@pytest.mark.parametrize("name", ["", "   ", "x" * 101, "line\nbreak", "tab\there", "nul\x00"])
def test_a_bad_name_is_refused(client, name):
    r = client.post(ORGS, {"name": name}, format="json")
    assert error_code(r, 400) == "validation_error"
    assert "name" in r.json()["error"]["fields"]
    assert not Organization.objects.exists()


def test_get_and_rename(world):
    client = world.client("admin")
    r = client.get(f"{ORGS}{world.org.pk}")
    assert r.status_code == 200 and r.json()["role"] == "admin" and r.json()["slug"] == "acme"
    r = client.patch(f"{ORGS}{world.org.pk}", {"name": "Acme Inc", "slug": "acme-inc"}, format="json")
    assert r.status_code == 200
    assert (r.json()["name"], r.json()["slug"]) == ("Acme Inc", "acme-inc")
    world.org.refresh_from_db()
    assert (world.org.name, world.org.slug) == ("Acme Inc", "acme-inc")
    row = AuditEvent.objects.get(event=EventType.ORG_UPDATED)
    assert row.organization_id == world.org.pk
    assert row.context["changed"] == {"name": {"old": "Acme", "new": "Acme Inc"},
                                      "slug": {"old": "acme", "new": "acme-inc"}}


def test_renaming_to_a_taken_slug_is_a_conflict(world):
    r = world.client("owner").patch(f"{ORGS}{world.org.pk}", {"slug": "other"}, format="json")
    assert error_code(r, 409) == "slug_taken"
    world.org.refresh_from_db()
    assert world.org.slug == "acme"


def test_an_empty_patch_changes_nothing(world):
    r = world.client("owner").patch(f"{ORGS}{world.org.pk}", {}, format="json")
    assert r.status_code == 200 and r.json()["name"] == "Acme"
    assert not AuditEvent.objects.filter(event=EventType.ORG_UPDATED).exists()


def test_the_list_has_the_contract_shape(world):
    """The list carries exactly the caller's organizations, each with the contract's keys."""
    body = world.client("owner").get(ORGS).json()
    assert list(body) == ["organizations"]
    assert [set(o) for o in body["organizations"]] == [ORG_KEYS]


def test_users_can_be_in_several_organizations_with_different_roles(world):
    Membership.objects.create(user=world.users["member"], organization=world.other, role=OrgRole.ADMIN)
    body = world.client("member").get(ORGS).json()
    assert sorted((o["slug"], o["role"]) for o in body["organizations"]) == [("acme", "member"), ("other", "admin")]


def test_create_needs_a_signed_in_user():
    from rest_framework.test import APIClient

    r = APIClient().post(ORGS, {"name": "Acme"}, format="json")
    assert error_code(r, 401) == "not_authenticated"
    assert not Organization.objects.exists()


def test_two_users_creating_the_same_name_get_different_slugs():
    a, b = UserFactory(), UserFactory()
    slugs = {signed_in(u).post(ORGS, {"name": "Same"}, format="json").json()["slug"] for u in (a, b)}
    assert slugs == {"same", "same-2"}
