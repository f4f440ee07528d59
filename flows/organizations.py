"""An organization's session policy across apps: it may only tighten the global session rules, whose
allowed range sessions_app owns (``sessions_app.policy.session_policy_limits``); orgs checks a policy
against the range it is given (``orgs.services.session_policy_errors``). The API, the organization page
and the admin's form all go through here, so there is one range and one check."""

from __future__ import annotations

from accounts.models import User
from orgs import services as orgs
from orgs.models import Membership
from sessions_app.policy import session_policy_limits


def organization_update(*, user: User, organization_id, request=None, **changes) -> Membership:
    """``orgs.services.organization_update`` (rename, session policy) with the allowed range of a session
    policy. Its order stays: the organization lock, the role checks, then the range check."""
    return orgs.organization_update(user=user, organization_id=organization_id, request=request,
                                    policy_limits=session_policy_limits(), **changes)


def organization_policy_errors(policy: dict) -> dict[str, list[str]]:
    """What is wrong with ``policy`` (``maxSessionLifetimeSeconds``, ``idleTimeoutSeconds``), keyed
    ``sessionPolicy.<name>``: the admin's organization form."""
    return orgs.session_policy_errors(policy, limits=session_policy_limits())
