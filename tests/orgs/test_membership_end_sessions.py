"""An ended membership leaves the member's sessions (sessions_app/receivers.py, on the Membership's
``post_delete``): however it ends (the API, the admin's inline, the ORM anywhere), the sessions that had
its organization active fall back to none, and nothing else changes."""

from __future__ import annotations

import pytest
from django.test import Client

from orgs.models import Membership, OrgRole
from sessions_app.models import DeviceSession
from sessions_app.services import session_create
from tests.factories import UserFactory
from tests.orgs.test_admin import ORG_ADMIN, _inline_post
from tests.support.paths import ORGS


def _session(user, organization=None) -> DeviceSession:
    row = session_create(user=user, tokens=False).session
    DeviceSession.objects.filter(pk=row.pk).update(active_organization=organization)
    return row


def _active(row) -> object:
    return DeviceSession.objects.values_list("active_organization_id", flat=True).get(pk=row.pk)


def _end_by_api(world):
    r = world.client("admin").delete(f"{ORGS}{world.org.pk}/members/{world.uid('member2')}")
    assert r.status_code == 204


def _end_in_the_admin(world):
    staff = Client()
    staff.force_login(UserFactory(is_staff=True, is_superuser=True))
    r = staff.post(f"{ORG_ADMIN}{world.org.pk}/change/", _inline_post(world, {"member2": {"DELETE": "on"}}))
    assert r.status_code == 302


def _end_by_the_orm(world):
    Membership.objects.filter(user=world.users["member2"], organization=world.org).delete()


@pytest.mark.parametrize("end", [_end_by_api, _end_in_the_admin, _end_by_the_orm])
def test_an_ended_membership_is_no_longer_active_on_the_members_sessions(world, end):
    member2 = world.users["member2"]
    Membership.objects.create(user=member2, organization=world.other, role=OrgRole.MEMBER)
    with_org, with_other, with_none = _session(member2, world.org), _session(member2, world.other), _session(member2)
    someone_else = _session(world.users["member"], world.org)
    end(world)
    assert not Membership.objects.filter(user=member2, organization=world.org).exists()
    assert _active(with_org) is None
    assert (_active(with_other), _active(with_none)) == (world.other.pk, None)
    assert _active(someone_else) == world.org.pk
    assert not DeviceSession.objects.filter(revoked_at__isnull=False).exists()  # they stay signed in
