"""``authorization_step``: what the authorization endpoint does next, without HTTP (the view maps each step
to a redirect, a page or a code; tests/oidc_provider/test_conformance.py drives the same through HTTP)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from oidc_provider.services import authorization as a
from oidc_provider.services.authorization import authorization_step
from sessions_app.services import session_create
from tests.factories import UserFactory


@pytest.fixture
def sessions():
    ada, grace = UserFactory(email="ada@example.com"), UserFactory(email="grace@example.com")
    return session_create(user=ada, tokens=False).session, session_create(user=grace, tokens=False).session


def step(client, active, others=(), prompts=(), **kwargs):
    return authorization_step(client=client, scopes=["openid"], active=active, others=list(others),
                              prompts=set(prompts), **kwargs)


def test_nobody_signed_in(confidential):
    client, _ = confidential
    assert step(client, None).kind == a.SIGN_IN
    assert step(client, None, prompts={"none"}).kind == a.LOGIN_REQUIRED


def test_the_active_account_or_the_one_the_hints_name(confidential, sessions):
    client, _ = confidential
    ada, grace = sessions
    assert step(client, ada, [grace]) == a.Step(a.ISSUE, ada)
    assert step(client, ada, [grace], login_hint="grace@example.com") == a.Step(a.ISSUE, grace)
    assert step(client, ada, [grace], hint_sub=str(grace.user_id)) == a.Step(a.ISSUE, grace)
    assert step(client, ada, [grace], login_hint="nobody@example.com").kind == a.ADD_ACCOUNT
    assert step(client, ada, [grace], hint_sub=str(grace.user_id), login_hint="ada@example.com").kind == a.ADD_ACCOUNT


def test_fresh_sign_in(confidential, sessions):
    client, _ = confidential
    ada, grace = sessions
    ada.reauthenticated_at = grace.reauthenticated_at = timezone.now() - timedelta(minutes=10)
    assert step(client, ada, max_age=60) == a.Step(a.REAUTHENTICATE, ada)
    assert step(client, ada, max_age=3600).kind == a.ISSUE
    assert step(client, ada, prompts={"login"}).kind == a.REAUTHENTICATE
    assert step(client, ada, [grace], prompts={"login"}, login_hint="grace@example.com").kind == a.ADD_ACCOUNT
    assert step(client, ada, prompts={"none"}, max_age=60).kind == a.LOGIN_REQUIRED


def test_choose_account_and_consent(make_client, sessions):
    ada, _ = sessions
    partner, _ = make_client("Partner", first_party=False)
    assert step(partner, ada, prompts={"select_account"}).kind == a.CHOOSE_ACCOUNT
    assert step(partner, ada) == a.Step(a.CONSENT, ada)
    assert step(partner, ada, prompts={"none"}).kind == a.CONSENT_REQUIRED
    assert step(partner, ada, answered_for=str(ada.pk)).kind == a.DECIDED
    assert step(partner, ada, answered_for="someone-else").kind == a.CONSENT
    a.consent_grant(client=partner, user=ada.user, scopes=["openid"])
    assert step(partner, ada).kind == a.ISSUE
    assert step(partner, ada, prompts={"consent"}).kind == a.CONSENT
