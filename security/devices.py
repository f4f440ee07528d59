"""New devices and anomalies.

* ``login_seen_check``: after a successful login, a device *and* network the account never used
  before (and the account has signed in before) mails a "new sign-in" notice with a one-click
  "this wasn't me" link.
* the "this wasn't me" link of that mail is flows.incident.not_me_report.
* ``refresh_anomaly``: the verdict on a refresh whose user-agent family (browser + OS) changed, or whose
  IP moved to another network (/24 IPv4, /48 IPv6). It writes nothing: sessions_app applies it (records
  it; ANOMALY_ACTION=revoke also ends the session).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.db import connection
from django.db.models import Count, Q
from django.utils import timezone

from audit.models import EventType
from audit.services import audit_record
from core.links import public_url
from core.request_meta import (
    client_ip,
    device_description,
    network_of,
    user_agent,
    user_agent_describe,
    user_agent_family,
)
from notifications.services import outbox_enqueue
from security.app_settings import app_settings
from security.models import SeenDevice, SecurityTokenPurpose
from security.services import security_token_issue

def device_fingerprint(*, device_id: str, ua: str) -> str:
    basis = f"id:{device_id}" if device_id else f"ua:{user_agent_family(ua)}/{user_agent_describe(ua).device_family}"
    return hashlib.sha256(basis.encode()).hexdigest()


def login_seen_check(*, user, session, request) -> bool:
    """Record the (device, network) of a successful login (call inside the login transaction).
    Returns True when a new sign-in mail was queued."""
    ua = user_agent(request)
    ip = client_ip(request)
    fingerprint, network = device_fingerprint(device_id=session.device_id, ua=ua), network_of(ip)
    now = timezone.now()
    seen_before, device_before, network_before = _seen_record(user_id=user.pk, device_key=fingerprint,
                                                              network=network, now=now)
    if not (seen_before and not device_before and not network_before and app_settings.NEW_DEVICE_ALERT):
        return False
    described = device_description(ua, session.device_name)
    raw = security_token_issue(user=user, purpose=SecurityTokenPurpose.NOT_ME, ttl=app_settings.NOT_ME_TTL,
                               session_id=str(session.pk), email=user.email)  # the address it is mailed to
    outbox_enqueue(kind="new_sign_in", recipient=user.email, subject="New sign-in to your account",
                   template="new_sign_in",
                   context={"user": user, "ip": ip or "unknown", "time": now, **described,
                            "sessions_link": public_url("web-account-sessions"),
                            "not_me_link": public_url("web-account-not-me", token=raw)})
    audit_record(event=EventType.NEW_DEVICE_LOGIN, request=request, actor=user, session=session, network=network,
                 **described)
    return True


_SEEN_UPSERT = """
WITH prior AS (
    SELECT count(*) AS seen, count(*) FILTER (WHERE device_key = %(device_key)s) AS device,
           count(*) FILTER (WHERE network = %(network)s) AS network
    FROM {table} WHERE user_id = %(user_id)s
), upsert AS (
    INSERT INTO {table} (user_id, device_key, network, first_seen_at, last_seen_at)
    VALUES (%(user_id)s, %(device_key)s, %(network)s, %(now)s, %(now)s)
    ON CONFLICT (user_id, device_key, network) DO UPDATE SET last_seen_at = EXCLUDED.last_seen_at
    RETURNING 1
)
SELECT prior.seen, prior.device, prior.network FROM prior, upsert
"""


def _seen_record(*, user_id, device_key: str, network: str, now) -> tuple[int, int, int]:
    """Record (or refresh) this (device, network) of the account and answer, as it was before: how many
    pairs it had, how many with this device, how many with this network. One statement on PostgreSQL
    (a data-modifying CTE: ``prior`` reads the snapshot before the upsert); two elsewhere."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_SEEN_UPSERT.format(table=connection.ops.quote_name(SeenDevice._meta.db_table)),
                           {"user_id": user_id, "device_key": device_key, "network": network, "now": now})
            return cursor.fetchone()
    seen = SeenDevice.objects.filter(user_id=user_id)
    known = seen.aggregate(any=Count("pk"), device=Count("pk", filter=Q(device_key=device_key)),
                           network=Count("pk", filter=Q(network=network)))
    if not seen.filter(device_key=device_key, network=network).update(last_seen_at=now):
        SeenDevice.objects.create(user_id=user_id, device_key=device_key, network=network, first_seen_at=now,
                                  last_seen_at=now)
    return known["any"], known["device"], known["network"]


@dataclass(frozen=True)
class Anomaly:
    """The verdict of ``refresh_anomaly``: what changed since the session was last used, and what the
    policy (SECURITY["ANOMALY_ACTION"]) says to do. sessions_app applies it
    (sessions_app.services.session_anomaly_apply)."""

    changes: tuple[str, ...]
    old_agent_family: str
    new_agent_family: str
    old_network: str | None
    new_network: str | None
    ip_address: str | None  # where the refresh came from: the session remembers it
    user_agent: str
    action: str  # "record" or "revoke"

    @property
    def revoke(self) -> bool:
        return self.action == "revoke"


def refresh_anomaly(*, session, request) -> Anomaly | None:
    """Compare a refresh with what the session last looked like. Returns None when nothing changed (or
    there is no request), else the verdict; it writes nothing."""
    if request is None:
        return None
    ua, ip = user_agent(request), client_ip(request)
    old_family, new_family = user_agent_family(session.user_agent), user_agent_family(ua)
    old_net, new_net = network_of(session.ip_address), network_of(ip)
    changes = []
    if old_family and new_family and old_family != new_family:
        changes.append("user_agent_family")
    if old_net and new_net and old_net != new_net:
        changes.append("network")
    if not changes:
        return None
    return Anomaly(changes=tuple(changes), old_agent_family=old_family, new_agent_family=new_family,
                   old_network=old_net, new_network=new_net, ip_address=ip, user_agent=ua,
                   action=app_settings.ANOMALY_ACTION)
