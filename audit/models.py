from django.conf import settings
from django.db import models
from django.utils import timezone


class EventType(models.TextChoices):
    """Stable dotted names; clients and log pipelines key on them (the API returns the name). The
    label is what people read: the security activity page and the admin show it."""

    USER_REGISTERED = "auth.user.registered", "Account created"
    REGISTER_EXISTING = "auth.register.existing_email", "Sign-up attempted with your address"
    EMAIL_VERIFIED = "auth.email.verified", "Email address confirmed"
    EMAIL_VERIFICATION_FAILED = "auth.email.verification_failed", "Email confirmation failed"
    VERIFICATION_RESENT = "auth.email.verification_resent", "Confirmation link sent again"
    LOGIN_SUCCEEDED = "auth.login.succeeded", "Signed in"
    LOGIN_FAILED = "auth.login.failed", "Sign-in failed"
    LOGOUT = "auth.logout", "Signed out"
    TOKEN_REFRESHED = "auth.token.refreshed", "Session renewed"
    TOKEN_REFRESH_FAILED = "auth.token.refresh_failed", "Session renewal failed"
    REFRESH_REUSE_DETECTED = "auth.token.reuse_detected", "Reused sign-in token detected"
    SESSION_REVOKED = "session.revoked", "Session signed out"
    PASSWORD_RESET_REQUESTED = "auth.password.reset_requested", "Password reset requested"
    PASSWORD_RESET_COMPLETED = "auth.password.reset_completed", "Password reset"
    PASSWORD_RESET_FAILED = "auth.password.reset_failed", "Password reset failed"
    PASSWORD_CHANGED = "auth.password.changed", "Password changed"
    PASSWORD_CHANGE_FAILED = "auth.password.change_failed", "Password change failed"
    PROFILE_UPDATED = "auth.profile.updated", "Profile updated"
    REAUTHENTICATED = "auth.reauthenticated", "Password confirmed"
    REAUTHENTICATION_FAILED = "auth.reauthentication_failed", "Password confirmation failed"
    SIGNING_KEY_CREATED = "identity.signing_key.created", "Signing key created"
    SIGNING_KEY_ROTATED = "identity.signing_key.rotated", "Signing key rotated"
    SIGNING_KEY_REVOKED = "identity.signing_key.revoked", "Signing key revoked"
    ACCESS_TOKEN_REJECTED = "identity.access_token.rejected", "Access token refused"
    # Several accounts in one browser (issue 3, docs/browser.md).
    ACCOUNT_SWITCHED = "auth.account.switched", "Switched account"
    # Defenses (issue 4, docs/security.md)
    ACCOUNT_LOCKED = "auth.lockout.locked", "Sign-in locked after failed attempts"
    ACCOUNT_UNLOCKED = "auth.lockout.unlocked", "Sign-in unlocked"
    UNLOCK_FAILED = "auth.lockout.unlock_failed", "Unlock link refused"
    RATE_LIMITED = "security.rate_limited", "Too many attempts"
    REAUTHENTICATION_REQUIRED = "auth.reauthentication_required", "Password confirmation required"
    ACCOUNT_DELETED = "auth.account.deleted", "Account deleted"
    ACCOUNT_DELETE_REFUSED = "auth.account.delete_refused", "Account deletion refused"
    # Email change (issue 4 step-up, docs/security.md)
    EMAIL_CHANGE_REQUESTED = "account.email_change_requested", "Email change requested"
    EMAIL_CHANGED = "account.email_changed", "Email address changed"
    EMAIL_CHANGE_FAILED = "account.email_change_failed", "Email change failed"
    # The way back from an email change, opened from the old address (issue 14, docs/security.md)
    EMAIL_CHANGE_REVERTED = "account.email_change_reverted", "Email change undone"
    EMAIL_CHANGE_REVERT_FAILED = "account.email_change_revert_failed", "Undoing an email change failed"
    NEW_DEVICE_LOGIN = "auth.login.new_device", "Sign-in from a new device"
    NOT_ME_REPORTED = "auth.login.not_me", "Sign-in reported as not you"
    NOT_ME_FAILED = "auth.login.not_me_failed", "\"This wasn't me\" link refused"
    SESSION_ANOMALY = "session.anomaly", "Unusual session activity"
    ADMIN_ACTION = "admin.action", "Change by an administrator"
    AUDIT_PRUNED = "audit.retention.pruned", "Old audit entries deleted"
    # Flood control (audit/services.py): refusals that concerned nobody known, counted instead of written.
    AUDIT_REFUSALS_COUNTED = "audit.refusals.counted", "Repeated refusals counted"
    SERVICE_ACCOUNT_CREATED = "service_account.created", "Service account created"
    SERVICE_ACCOUNT_SECRET_ROTATED = "service_account.secret_rotated", "Service account secret rotated"
    SERVICE_ACCOUNT_UPDATED = "service_account.updated", "Service account updated"
    SERVICE_TOKEN_ISSUED = "auth.service_token.issued", "Service token issued"
    SERVICE_TOKEN_FAILED = "auth.service_token.failed", "Service token refused"
    # Organizations (issue 5, docs/organizations.md); the row's organization_id names the organization.
    ORG_CREATED = "org.created", "Organization created"
    ORG_UPDATED = "org.updated", "Organization updated"
    ORG_DELETED = "org.deleted", "Organization deleted"
    ORG_MEMBER_ROLE_CHANGED = "org.member.role_changed", "Organization role changed"
    ORG_MEMBER_REMOVED = "org.member.removed", "Removed from an organization"
    ORG_INVITATION_CREATED = "org.invitation.created", "Organization invitation sent"
    ORG_INVITATION_REVOKED = "org.invitation.revoked", "Organization invitation withdrawn"
    ORG_INVITATION_ACCEPTED = "org.invitation.accepted", "Organization invitation accepted"
    ORG_INVITATION_ACCEPT_FAILED = "org.invitation.accept_failed", "Organization invitation failed"
    ORG_INVITATION_DECLINED = "org.invitation.declined", "Organization invitation declined"
    ORGANIZATION_SWITCHED = "auth.organization.switched", "Switched organization"
    # Security state (issue 14, docs/security.md "Hardening: security state ends links, sessions and known devices")
    PASSWORD_SET = "auth.password.set", "Password set by an administrator"
    ACCOUNT_DEACTIVATED = "auth.account.deactivated", "Account deactivated"
    KNOWN_DEVICE_REFUSED = "auth.known_device.refused", "Known-device exemption refused"
    # issue 14: forms of the pages
    FORM_ACCOUNT_MISMATCH = "web.form.account_mismatch", "Form refused: opened for another account"
    FORM_CSRF_FAILED = "web.form.csrf_failed", "Form refused: expired or not from this site"
    # Two-factor authentication (issue 11, docs/security.md "Two-factor")
    MFA_CHALLENGED = "auth.mfa.challenged", "Second step of sign-in asked for"
    MFA_VERIFIED = "auth.mfa.verified", "Second step of sign-in passed"
    MFA_FAILED = "auth.mfa.failed", "Wrong two-factor code"
    MFA_LOCKED = "auth.mfa.locked", "Two-factor codes locked after wrong attempts"
    TOTP_SETUP_STARTED = "mfa.totp.setup_started", "Authenticator app setup started"
    TOTP_ENABLED = "mfa.totp.enabled", "Two-factor authentication turned on"
    TOTP_CONFIRM_FAILED = "mfa.totp.confirm_failed", "Authenticator app setup code refused"
    TOTP_DISABLED = "mfa.totp.disabled", "Two-factor authentication turned off"
    RECOVERY_CODES_GENERATED = "mfa.recovery_codes.generated", "New recovery codes created"
    RECOVERY_CODE_USED = "mfa.recovery_code.used", "Recovery code used"
    TRUSTED_DEVICE_ADDED = "mfa.trusted_device.added", "Browser or device trusted for two-factor"
    TRUSTED_DEVICE_USED = "mfa.trusted_device.used", "Two-factor skipped on a trusted device"
    TRUSTED_DEVICE_REFUSED = "mfa.trusted_device.refused", "Trusted-device token refused"
    TRUSTED_DEVICE_REVOKED = "mfa.trusted_device.revoked", "Trusted device removed"
    MFA_REMOVED_BY_STAFF = "mfa.removed_by_staff", "Two-factor removed by an administrator"
    PASSKEY_ADDED = "passkey.added", "Passkey added"
    PASSKEY_ADD_REFUSED = "passkey.add_refused", "Passkey could not be added"
    PASSKEY_USED = "passkey.used", "Passkey used"
    PASSKEY_REFUSED = "passkey.refused", "Passkey refused"
    PASSKEY_RENAMED = "passkey.renamed", "Passkey renamed"
    PASSKEY_REMOVED = "passkey.removed", "Passkey removed"
    # OpenID Connect provider (issue 13, docs/oidc.md)
    OIDC_CLIENT_CREATED = "oidc.client.created", "OpenID Connect client registered"
    OIDC_CLIENT_UPDATED = "oidc.client.updated", "OpenID Connect client changed"
    OIDC_CLIENT_SECRET_ROTATED = "oidc.client.secret_rotated", "OpenID Connect client secret rotated"
    OIDC_AUTHORIZED = "oidc.authorization.granted", "Signed in to an app"
    OIDC_AUTHORIZATION_REFUSED = "oidc.authorization.refused", "App sign-in refused"
    OIDC_CONSENT_GRANTED = "oidc.consent.granted", "App allowed"
    OIDC_CONSENT_DENIED = "oidc.consent.denied", "App not allowed"
    OIDC_CONSENT_WITHDRAWN = "oidc.consent.withdrawn", "App access withdrawn"
    OIDC_TOKEN_ISSUED = "oidc.token.issued", "App token issued"
    OIDC_TOKEN_REFUSED = "oidc.token.refused", "App token refused"
    OIDC_CODE_REUSED = "oidc.code.reused", "App sign-in code used twice"
    OIDC_TOKEN_REVOKED = "oidc.token.revoked", "App token revoked"
    OIDC_LOGOUT = "oidc.logout", "Signed out by an app"


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError("Audit events are append-only.")


class AuditEvent(models.Model):
    """One security event. Rows are written once by audit.services.audit_record and never edited.

    Actor and subject keep the user id even after the account is deleted (no FK constraint, no
    cascade): the trail outlives the people in it.
    """

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    event = models.CharField(max_length=64, choices=EventType.choices, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.DO_NOTHING,
        db_constraint=False, related_name="+",
    )
    subject = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.DO_NOTHING,
        db_constraint=False, related_name="+",
    )
    session_id = models.UUIDField(null=True, blank=True, db_index=True)
    organization_id = models.UUIDField(null=True, blank=True, db_index=True)  # no FK: outlives the organization
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True, default="")
    success = models.BooleanField(default=True)
    context = models.JSONField(default=dict, blank=True)
    # Hash chain (audit/chain.py): row_hash covers this row's fields (computed at insert, no lock); the
    # sealer covers the rows with AuditSeal rows. prev_hash: the per-row link of rows written before
    # the seal (audit 0012), part of their contents; empty since.
    prev_hash = models.CharField(max_length=64, blank=True, default="")
    row_hash = models.CharField(max_length=64, blank=True, default="")

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["subject", "-created_at"], name="audit_subject_recent")]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.event}"

    def save(self, *args, **kwargs):
        """Insert only: a loaded row is never saved again, and a new instance carrying an existing
        id fails on the primary key instead of being turned into an UPDATE by the ORM."""
        if not self._state.adding or kwargs.get("force_update") or kwargs.get("update_fields") is not None:
            raise TypeError("Audit events are append-only.")
        if not args:
            kwargs["force_insert"] = True
        super().save(*args, **kwargs)


class AuditSealQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError("Audit seals are append-only.")


class AuditSeal(models.Model):
    """One link of the audit chain: every AuditEvent with ``after_id < id <= last_id`` (``row_count``
    rows), sealed by ``seal_hash`` over the previous seal's hash and the rows' hashes (audit/chain.py).
    Written by the sealer only; never edited; deleted only by retention, oldest first."""

    after_id = models.BigIntegerField(unique=True)  # unique: two sealers can never fork the chain
    last_id = models.BigIntegerField(unique=True)
    row_count = models.PositiveIntegerField()
    prev_hash = models.CharField(max_length=64, blank=True, default="")
    seal_hash = models.CharField(max_length=64)
    sealed_at = models.DateTimeField()

    objects = AuditSealQuerySet.as_manager()

    class Meta:
        ordering = ["after_id"]

    def __str__(self):
        return f"seal of audit rows {self.after_id + 1}..{self.last_id}"

    def save(self, *args, **kwargs):
        if not self._state.adding or kwargs.get("force_update") or kwargs.get("update_fields") is not None:
            raise TypeError("Audit seals are append-only.")
        if not args:
            kwargs["force_insert"] = True
        super().save(*args, **kwargs)
