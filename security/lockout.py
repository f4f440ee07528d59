"""Brute force: django-axes locks an (account, IP) pair after AXES_FAILURE_LIMIT failures.

``login_authenticate`` is the one way a password login is checked (API and pages): it runs Django's
``authenticate`` (axes' backend first), answers a locked pair with 429 ``account_locked`` and
``Retry-After`` before any password is looked at (so the answer cannot tell a right password from a
wrong one), audits the lock, mails the account an unlock link, and resets the pair on success.

A device that signed in before presents the ``deviceToken`` it got at that login; axes then neither
counts nor blocks its attempts (its whitelist callable), so strangers hammering an account from the
same address cannot lock its owner's devices out. Rate limits still apply to it. The token is a
``KnownDevice`` row (hash only): bound to the device that received it, ended by a security-state
change of the account (its security version) and by the user signing that device's session out.

Before the lock, a progressive delay (``login_delay_remaining``): after the k-th failure of a pair,
its next attempt is refused until ``last failure + min(BASE * 2**(k-1), MAX)`` with 429
``rate_limited`` and ``Retry-After``, again before any password is looked at. Nothing ever sleeps
(a sleeping worker would be a denial-of-service lever). It reads axes' own failure records, so it is
keyed exactly like the lock, a success or an unlock resets it, and known devices are exempt.

One read for all of it (issue 15: a login is at most 8 SQL statements): ``login_authenticate`` loads the
account and its (account, IP) pair's failures in the same statement (``_candidate``: the sum within the
cool-off, and whether any record exists at all). The delay reads the failures from it, axes' lock check
gets them through ``LockoutHandler`` (AXES_HANDLER) instead of its own query, and the reset on success
runs only when there is a record to reset. The password is checked by accounts.backends.LoginBackend on
the row already loaded. An unknown address costs one more read (its pair alone) and the same hash work.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from contextlib import nullcontext
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from axes.handlers.database import AxesDatabaseHandler
from axes.handlers.proxy import AxesProxyHandler
from axes.models import AccessAttempt
from django.contrib.auth import authenticate, get_user_model
from django.core import signing
from django.db import transaction
from django.db.models import Exists, F, IntegerField, Max, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from audit.models import EventType
from audit.refusals import audited_refusals
from audit.services import audit_record
from core.cleanup import delete_in_batches
from core import metrics
from core.email import normalize_email
from core.errors import ApiError, json_error
from core.links import public_url
from core.prepared import PreparedInsert, PreparedQuery
from core.request_meta import client_ip, user_agent
from core.tokens import hash_token
from notifications.services import outbox_enqueue
from security.app_settings import app_settings
from security.devices import device_fingerprint
from security.models import KnownDevice, SecondFactorFailure, SecurityToken, SecurityTokenPurpose
from security.ratelimit import RateLimited
from security.services import security_token_consume, security_token_issue, security_token_owner

KNOWN_DEVICE_SALT = "security.known-device"
LOCKED_MESSAGE = "Too many failed sign-in attempts. Try again later, or use the link we emailed to the account."


class AccountLocked(ApiError):
    status_code = 429
    default_code = "account_locked"
    default_detail = LOCKED_MESSAGE


class LoginDelayed(RateLimited):
    """429 ``rate_limited``: the pair's progressive delay has not passed yet (Retry-After: how long)."""

    def __init__(self, seconds: int):
        super().__init__(f"Too many failed sign-in attempts. Try again in {seconds} second"
                         f"{'' if seconds == 1 else 's'}.", headers={"Retry-After": str(seconds)})


# --- django-axes hooks (settings.AXES_*_CALLABLE) ---------------------------------------------------

def axes_client_ip(request):
    """The same client IP as everywhere else (AUTH_TRUSTED_PROXY_COUNT), never a header the client picks."""
    return client_ip(request)


def axes_known_device(request, credentials) -> bool:
    """axes' whitelist: set by login_authenticate after checking the request's deviceToken."""
    return bool(getattr(request, "mca_known_device", False))


def axes_lockout_response(request, original_response=None, credentials=None):
    """What AxesMiddleware answers for a locked request. The view already answered the lockout
    (login_authenticate raised AccountLocked; a page rendered its own 429): keep that answer.
    Otherwise our envelope, never axes' CORS-open JSON."""
    if original_response is not None and original_response.status_code == 429:
        return original_response
    email = (credentials or {}).get("email") or ""
    return json_error("account_locked", LOCKED_MESSAGE, 429,
                      {"Retry-After": str(lockout_retry_after(email=email, ip=client_ip(request)))})


class LockoutHandler(AxesDatabaseHandler):
    """axes' database handler (AXES_HANDLER), except that its lock check before the password uses the
    pair's failures login_authenticate already read (``mca_pair_failures``: the same sum over the same
    records, username and IP within the cool-off), once. Counting a failure, and the count after it,
    read the records as axes does."""

    def get_failures(self, request, credentials=None) -> int:
        failures = getattr(request, "mca_pair_failures", None)
        if failures is None:
            return super().get_failures(request, credentials)
        request.mca_pair_failures = None  # once: the count after a failure is axes' own fresh read
        return failures


# --- known devices ------------------------------------------------------------------------------

def _device_key(*, request, device_id: str) -> str:
    """What binds a known device to its device: the client's deviceId, else browser + OS + device family
    (the key security.devices uses for "new sign-in" mails)."""
    return device_fingerprint(device_id=device_id, ua=user_agent(request))


_KNOWN_DEVICE_INSERT = PreparedInsert(KnownDevice)  # every login writes one (core/prepared.py)


def known_device_token_issue(*, user, request, session=None, device_id: str = "", replaces: str = "") -> str:
    """A ``deviceToken`` for the device of ``request``: signed and timestamped, naming the account (pages
    keep one per account in a cookie), stored as a hash with the device's key, the session that received
    it (``session``; its deviceId is the device's) and the account's security version. ``replaces``: the
    token this device presented at this login, which ends now (one live token per device)."""
    now = timezone.now()
    if session is not None:
        device_id = session.device_id
    raw = signing.dumps({"u": str(user.pk), "n": secrets.token_urlsafe(16)}, salt=KNOWN_DEVICE_SALT)
    with transaction.atomic() if replaces else nullcontext():  # one INSERT needs no transaction of its own
        if replaces:
            KnownDevice.objects.filter(user=user, token_hash=hash_token(replaces), revoked_at__isnull=True).update(
                revoked_at=now, revoked_reason="replaced")
        _KNOWN_DEVICE_INSERT.execute(KnownDevice(
            user=user, token_hash=hash_token(raw), device_key=_device_key(request=request, device_id=device_id),
            session_id=getattr(session, "pk", None), security_version=user.security_version, created_at=now,
            expires_at=now + app_settings.KNOWN_DEVICE_MAX_AGE))
    return raw


def _known_device_refusal(row: KnownDevice | None, *, user, request, device_id: str) -> str | None:
    if row is None:
        return "unknown"  # never issued (or cleaned up after it ended)
    if row.revoked_at is not None:
        return row.revoked_reason or "revoked"  # logout, user_revoked, others_revoked, replaced
    if row.expires_at <= timezone.now():
        return "expired"
    if row.security_version != user.security_version:
        return "superseded"  # a password reset or change, "this wasn't me", sign out everywhere, ...
    if row.device_key != _device_key(request=request, device_id=device_id):
        return "other_device"
    return None


def known_device_valid(*, token: str, email: str, request=None, device_id: str = "") -> bool:
    """Does ``token`` exempt this login of ``email`` from lockouts? Only a live token of that account
    presented by the device that received it (the same deviceId, or without one the same browser, OS and
    device family). A signed token of the account that is refused is audited (``reason``: why)."""
    if not token:
        return False
    try:
        data = signing.loads(token, salt=KNOWN_DEVICE_SALT,
                             max_age=app_settings.KNOWN_DEVICE_MAX_AGE.total_seconds())
    except signing.BadSignature:
        return False
    user = get_user_model().objects.filter(email=normalize_email(email)).only("pk", "security_version").first()
    if user is None or not isinstance(data, dict) or str(user.pk) != str(data.get("u")):
        return False
    row = KnownDevice.objects.filter(user=user, token_hash=hash_token(token)).first()
    reason = _known_device_refusal(row, user=user, request=request, device_id=device_id)
    if reason is not None:
        audit_record(event=EventType.KNOWN_DEVICE_REFUSED, request=request, subject=user, success=False,
                     reason=reason)
    return reason is None


def device_token_proves_owner(request, address: str) -> bool:
    """API owner proof: the body's ``deviceToken`` (returned by a login of that account) is valid for
    ``address`` (security/lockout.py's known devices)."""
    data = getattr(request, "data", None)
    token = data.get("deviceToken") if isinstance(data, dict) else None
    device_id = data.get("deviceId", "") if isinstance(data, dict) else ""
    return (isinstance(token, str) and len(token) <= 512 and isinstance(device_id, str) and len(device_id) <= 128
            and known_device_valid(token=token, email=address, request=request, device_id=device_id))


def known_devices_end(*, user, session, reason: str) -> int:
    """The user signed ``session`` out: the device that received a token with it is no longer known."""
    return KnownDevice.objects.filter(user=user, session_id=session.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), revoked_reason=reason)


def known_devices_keep(*, user, session, from_version: int, to_version: int) -> int:
    """A security-state change that keeps ``session`` signed in keeps its device known (the rest end
    with the version)."""
    return KnownDevice.objects.filter(user=user, session_id=session.pk, security_version=from_version,
                                      revoked_at__isnull=True).update(security_version=to_version)


def known_devices_cleanup(*, now: datetime | None = None) -> int:
    """Delete known devices that expired, were revoked or were superseded more than a day ago (superseded
    ones at once: a version never goes back)."""
    cutoff = (now or timezone.now()) - timedelta(days=1)
    return (delete_in_batches(KnownDevice.objects.filter(expires_at__lt=cutoff))  # core/cleanup.py
            + delete_in_batches(KnownDevice.objects.filter(revoked_at__lt=cutoff))
            + delete_in_batches(KnownDevice.objects.filter(security_version__lt=F("user__security_version"))))


# --- lockout state ------------------------------------------------------------------------------

def lockout_retry_after(*, email: str, ip: str | None) -> int:
    """Seconds until the (account, IP) pair is unlocked (at least 1)."""
    last = (AccessAttempt.objects.filter(username=normalize_email(email or ""), ip_address=ip)
            .order_by("-attempt_time").values_list("attempt_time", flat=True).first())
    if last is None:
        return 1
    remaining = (last + app_settings.LOCKOUT_DURATION - timezone.now()).total_seconds()
    return max(1, math.ceil(remaining))


def lockout_reset(*, email: str, ip: str | None = None) -> int:
    """Forget the failures of an account (from one IP, or from all). Returns the records removed."""
    if ip is None:
        return AxesProxyHandler.reset_attempts(username=normalize_email(email))
    return AxesProxyHandler.reset_attempts(username=normalize_email(email), ip_address=ip)


def _pair_attempts(*, email: str, ip: str | None):
    return AccessAttempt.objects.filter(username=email, ip_address=ip)


def _recent(now: datetime) -> Q:
    """The records axes counts: within the cool-off (get_cool_off_threshold)."""
    return _since(now - app_settings.LOCKOUT_DURATION)


def _since(since: datetime) -> Q:
    return Q(attempt_time__gte=since)


def _pair_failures(*, email: str, ip: str | None, now: datetime) -> tuple[int, datetime | None]:
    """The pair's failures as axes counts them (the sum over its rows, one per user agent, within the
    cool-off) and the time of the last one."""
    totals = (_pair_attempts(email=email, ip=ip).filter(_recent(now))
              .aggregate(failures=Sum("failures_since_start"), last=Max("attempt_time")))
    return totals["failures"] or 0, totals["last"]


@dataclass(frozen=True)
class _Candidate:
    """What one login read: the account of the address (or None) and its pair's lockout state."""

    user: object | None
    failures: int  # axes' count: the sum within the cool-off
    recorded: bool  # any record of the pair (a success resets them, whatever their age)


def login_lookup(users: Callable[..., QuerySet], **params) -> PreparedQuery:
    """The one statement of a password login, compiled once (core/prepared.py; compiling it took about
    a third of a login's CPU): the account of an email from ``users(**values)`` (the caller's queryset of
    get_user_model(), with what it needs next annotated; ``params`` names its values as PreparedQuery
    does) and its (account, IP) pair's lockout state: axes' failure sum within the cool-off, and whether
    any record exists."""
    user_model = get_user_model()

    def build(email, ip, since, **values):
        attempts = _pair_attempts(email=email, ip=ip)  # the pair and the cool-off: the same rules as axes' count
        failures = attempts.order_by().values("username").annotate(
            total=Sum("failures_since_start", filter=_since(since))).values("total")
        return users(**values).filter(email=email).annotate(  # unique: no ORDER BY
            lockout_failures=Coalesce(Subquery(failures, output_field=IntegerField()), Value(0)),
            lockout_recorded=Exists(attempts))

    return PreparedQuery(build, params={
        "email": (user_model._meta.get_field(user_model.EMAIL_FIELD), "prepared@login-lookup.invalid"),
        "ip": (AccessAttempt._meta.get_field("ip_address"), "192.0.2.199"),
        "since": (AccessAttempt._meta.get_field("attempt_time"), datetime(1901, 1, 2, tzinfo=UTC)),
        **params})


@functools.cache
def _plain_lookup() -> PreparedQuery:
    return login_lookup(lambda: get_user_model().objects.all())


def _candidate(lookup: PreparedQuery, values: dict, *, email: str, ip: str | None, now: datetime) -> _Candidate:
    """One statement: the account of ``email`` and its (account, IP) pair's lockout state (``login_lookup``).
    An unknown address: a second statement for the pair alone."""
    since = now - app_settings.LOCKOUT_DURATION  # the records axes counts (get_cool_off_threshold)
    if ip is None:  # "= NULL" is not "IS NULL": the ORM writes the statement for a request without an address
        user = lookup.queryset(email=email, ip=ip, since=since, **values).first()
    else:
        user = lookup.first(email=email, ip=ip, since=since, **values)
    if user is None:
        return _Candidate(user=None, failures=_pair_failures(email=email, ip=ip, now=now)[0], recorded=False)
    return _Candidate(user=user, failures=user.lockout_failures, recorded=user.lockout_recorded)


def login_delay_remaining(*, email: str, ip: str | None, now: datetime | None = None,
                          failures: int | None = None) -> tuple[int, float]:
    """(failures, seconds) the (account, IP) pair must still wait before its next attempt is checked;
    0 seconds: go ahead. A locked pair is not delayed here: axes answers it with account_locked.
    ``failures``: the pair's count already read (login_authenticate); the time of the last one is then
    read only when there is a delay to compute."""
    if not app_settings.login_delay(1):  # off: not even a query
        return 0, 0.0
    now = now or timezone.now()
    if failures == 0:
        return 0, 0.0
    failures, last = _pair_failures(email=normalize_email(email or ""), ip=ip, now=now)
    if not failures or failures >= app_settings.LOCKOUT_FAILURES:
        return failures, 0.0
    wait = (last + timedelta(seconds=app_settings.login_delay(failures)) - now).total_seconds()
    return failures, max(0.0, wait)


def _login_delay_enforce(*, email: str, request, failures: int | None = None, now: datetime | None = None) -> None:
    """Refuse an attempt inside the pair's delay (audited, not counted as a failure)."""
    failures, wait = login_delay_remaining(email=email, ip=client_ip(request), failures=failures, now=now)
    if wait <= 0:
        return
    seconds = max(1, math.ceil(wait))
    metrics.rate_limited(scope="login_delay")
    subject = get_user_model().objects.filter(email=email).first()
    with transaction.atomic():
        audit_record(event=EventType.RATE_LIMITED, request=request, subject=subject, success=False,
                     scope="login_delay", failures=failures, delay=app_settings.login_delay(failures),
                     retry_after=seconds, email=email[:254])
    raise LoginDelayed(seconds)


def _lockout_started(*, email: str, request) -> None:
    """The failure that locked the pair: audit it and mail the account an unlock link (at most one
    live link per lockout period, so an attacker cannot flood the inbox)."""
    user = get_user_model().objects.filter(email=email, is_active=True).first()
    with transaction.atomic():
        audit_record(event=EventType.ACCOUNT_LOCKED, request=request, subject=user, success=False,
                     email=email[:254], failures=app_settings.LOCKOUT_FAILURES,
                     seconds=int(app_settings.LOCKOUT_DURATION.total_seconds()))
        if user is not None:
            minutes = int(app_settings.LOCKOUT_DURATION.total_seconds() // 60)
            _unlock_link_mail(user=user, request=request, minutes=minutes)


def _unlock_link_mail(*, user, request, minutes: int, second_factor: bool = False) -> None:
    """Mail ``user`` an unlock link, unless one mailed within the lockout period is still live."""
    recent = SecurityToken.objects.filter(user=user, purpose=SecurityTokenPurpose.UNLOCK, used_at__isnull=True,
                                          security_version=user.security_version,  # not one a change ended
                                          created_at__gt=timezone.now() - timedelta(minutes=minutes))
    if recent.exists():
        return
    raw = security_token_issue(user=user, purpose=SecurityTokenPurpose.UNLOCK, ttl=app_settings.UNLOCK_TTL)
    outbox_enqueue(kind="account_locked", recipient=user.email, subject="Sign-in to your account was locked",
                   template="account_locked",
                   context={"user": user, "ip": client_ip(request) or "unknown", "time": timezone.now(),
                            "minutes": minutes, "second_factor": second_factor,
                            "link": public_url("web-account-unlock", token=raw),
                            "reset_link": public_url("web-forgot-password")})


# --- the second factor's own budget -----------------------------------------------------------------

def second_factor_retry_after(*, user, now: datetime | None = None) -> int:
    """Seconds until the account's second factor takes codes again; 0 while it is not locked: fewer
    than SECOND_FACTOR_FAILURES wrong codes within SECOND_FACTOR_WINDOW."""
    now = now or timezone.now()
    window, limit = app_settings.SECOND_FACTOR_WINDOW, app_settings.SECOND_FACTOR_FAILURES
    recent = list(SecondFactorFailure.objects.filter(user=user, created_at__gt=now - window)
                  .order_by("-created_at").values_list("created_at", flat=True)[:limit])
    if len(recent) < limit:
        return 0
    return max(1, math.ceil((recent[-1] + window - now).total_seconds()))


def second_factor_locked_check(*, user, request=None) -> None:
    """Raise 429 account_locked (Retry-After) while the account's second factor is locked; the caller
    audits the refusal with its own event."""
    seconds = second_factor_retry_after(user=user)
    if seconds:
        raise AccountLocked("Too many wrong codes. Try again later, or use the link we emailed to the account.",
                            headers={"Retry-After": str(seconds)})


def second_factor_failure_record(*, user, request=None) -> bool:
    """Count a wrong second-factor code of ``user``. The one that reaches the limit locks the second
    factor: audited, and the account gets the unlock link (as a password lockout). Returns True then.
    Call in a transaction that commits even though the attempt is refused."""
    SecondFactorFailure.objects.create(user=user, ip_address=client_ip(request))
    if not second_factor_retry_after(user=user):
        return False
    minutes = int(app_settings.SECOND_FACTOR_WINDOW.total_seconds() // 60)
    audit_record(event=EventType.MFA_LOCKED, request=request, subject=user, success=False,
                 failures=app_settings.SECOND_FACTOR_FAILURES, minutes=minutes)
    _unlock_link_mail(user=user, request=request, minutes=minutes, second_factor=True)
    return True


def second_factor_reset(*, user) -> int:
    """Forget the account's wrong codes (the unlock link, a successful second factor)."""
    return SecondFactorFailure.objects.filter(user=user).delete()[0]


def second_factor_failures_cleanup(*, now: datetime | None = None) -> int:
    """Delete wrong codes older than the window (they no longer count)."""
    cutoff = (now or timezone.now()) - app_settings.SECOND_FACTOR_WINDOW
    return delete_in_batches(SecondFactorFailure.objects.filter(created_at__lt=cutoff))


def login_authenticate(*, request, email: str, password: str, device_token: str = "", device_id: str = "",
                       lookup: PreparedQuery | None = None, lookup_values: dict | None = None):
    """Check a password login through django-axes. Returns the user or None (wrong credentials);
    raises LoginDelayed (429 rate_limited, Retry-After) inside the pair's progressive delay and
    AccountLocked (429, Retry-After) when the (account, IP) pair is locked, both before any password
    is checked. A known device (``device_token`` presented with the ``device_id`` it was bound to) is
    neither delayed nor locked. ``lookup`` (``login_lookup``) and its ``lookup_values``: how to load the
    account (the caller annotates what it needs next; the returned user carries it)."""
    email = normalize_email(email)
    http_request = getattr(request, "_request", request)
    http_request.mca_known_device = known_device_valid(token=device_token, email=email, request=request,
                                                       device_id=device_id)
    now = timezone.now()
    found = _candidate(lookup or _plain_lookup(), lookup_values or {}, email=email, ip=client_ip(request), now=now)
    if not http_request.mca_known_device:
        _login_delay_enforce(email=email, request=request, failures=found.failures, now=now)
        http_request.mca_pair_failures = found.failures  # axes' lock check (LockoutHandler)
    # accounts.backends.LoginBackend checks the password on the row loaded here (``candidates``).
    user = authenticate(http_request, email=email, password=password,
                        candidates=[found.user] if found.user is not None else [])
    http_request.mca_pair_failures = None
    if user is None and getattr(http_request, "axes_locked_out", False):
        # This failure locked the pair (axes counts the attempts made while locked too: those are not new locks).
        if getattr(http_request, "axes_failures_since_start", None) == app_settings.LOCKOUT_FAILURES:
            _lockout_started(email=email, request=request)
        else:
            subject = get_user_model().objects.filter(email=email).first()
            audit_record(event=EventType.LOGIN_FAILED, request=request, subject=subject, success=False,
                         reason="account_locked", email=email[:254])
        raise AccountLocked(headers={"Retry-After": str(lockout_retry_after(email=email, ip=client_ip(request)))})
    if user is not None and not http_request.mca_known_device and found.recorded:
        # Reset on success (when there is a record to reset); a known device's success leaves a stranger's
        # count on this address alone.
        lockout_reset(email=email, ip=client_ip(request))
    return user


def lockout_unlock(*, token: str, request=None, device_id: str = "") -> str:
    """Follow the mailed unlock link: lift the lock for the address the link is opened from and
    return a deviceToken, so the device that follows the link is trusted from now on (bound to it:
    ``device_id``, the deviceId an app signs in with, or the browser). Locks that strangers earned
    from other addresses stay."""
    with audited_refusals(event=EventType.UNLOCK_FAILED, request=request,
                          subject=security_token_owner(token, SecurityTokenPurpose.UNLOCK)):
        # One transaction; a refused link changes nothing and is audited (flood-controlled when nobody is known).
        user = security_token_consume(raw=token, purpose=SecurityTokenPurpose.UNLOCK).user
        removed = lockout_reset(email=user.email, ip=client_ip(request))
        codes = second_factor_reset(user=user)
        audit_record(event=EventType.ACCOUNT_UNLOCKED, request=request, actor=user, via="email_link",
                     records=removed, second_factor_failures=codes)
        return known_device_token_issue(user=user, request=request, device_id=device_id)


def lockout_unlock_by_staff(*, attempt: AccessAttempt, staff, request=None) -> None:
    """Staff lifting a lock in the admin (security/admin.py)."""
    subject = get_user_model().objects.filter(email=attempt.username).first()
    with transaction.atomic():
        email, ip = attempt.username or "", attempt.ip_address
        attempt.delete()
        audit_record(event=EventType.ACCOUNT_UNLOCKED, request=request, actor=staff, subject=subject or staff,
                     via="admin", email=email[:254], locked_ip=ip)
