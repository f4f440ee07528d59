"""Hash chain on the audit trail (issue 4): prev_hash/row_hash, created_at set by audit_record
(so it is known before the row is hashed), and a backfill that links the rows already there."""

from django.db import migrations, models
import django.utils.timezone

POSTGRES_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_chain_lock_head(lock_key bigint) RETURNS varchar AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    RETURN (SELECT row_hash FROM audit_auditevent ORDER BY id DESC LIMIT 1);
END;
$$ LANGUAGE plpgsql VOLATILE;
"""
POSTGRES_FUNCTION_DROP = "DROP FUNCTION IF EXISTS audit_chain_lock_head(bigint);"


def create_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_FUNCTION)
    elif schema_editor.connection.vendor == "sqlite":
        # SQLite rebuilds a table to alter a column, and the rebuild drops its triggers: put the
        # append-only trigger (audit 0002) back.
        schema_editor.execute("DROP TRIGGER IF EXISTS audit_event_no_update")
        schema_editor.execute(SQLITE_TRIGGER)


def drop_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_FUNCTION_DROP)


SQLITE_TRIGGER = """
CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_auditevent
BEGIN SELECT RAISE(ABORT, 'audit_auditevent is append-only'); END;
"""


def link_existing_rows(apps, schema_editor):
    from audit.chain import GENESIS, row_digest

    AuditEvent = apps.get_model("audit", "AuditEvent")
    if not AuditEvent.objects.exists():
        return
    vendor = schema_editor.connection.vendor
    # The append-only trigger refuses UPDATE: lift it for this one backfill, inside the migration.
    if vendor == "postgresql":
        schema_editor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_no_update")
    elif vendor == "sqlite":
        schema_editor.execute("DROP TRIGGER IF EXISTS audit_event_no_update")
    prev = GENESIS
    for row in AuditEvent.objects.order_by("id").iterator(chunk_size=2000):
        row_hash = row_digest(row, prev)
        AuditEvent.objects.filter(pk=row.pk).update(prev_hash=prev, row_hash=row_hash)
        prev = row_hash
    if vendor == "postgresql":
        schema_editor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_no_update")
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_TRIGGER)


class Migration(migrations.Migration):
    dependencies = [("audit", "0004_auditevent_organization_id")]

    operations = [
        migrations.AlterField(
            model_name="auditevent",
            name="created_at",
            field=models.DateTimeField(db_index=True, default=django.utils.timezone.now),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="prev_hash",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="row_hash",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="event",
            field=models.CharField(choices=[('auth.user.registered', 'User Registered'), ('auth.register.existing_email', 'Register Existing'), ('auth.email.verified', 'Email Verified'), ('auth.email.verification_failed', 'Email Verification Failed'), ('auth.email.verification_resent', 'Verification Resent'), ('auth.login.succeeded', 'Login Succeeded'), ('auth.login.failed', 'Login Failed'), ('auth.logout', 'Logout'), ('auth.token.refreshed', 'Token Refreshed'), ('auth.token.refresh_failed', 'Token Refresh Failed'), ('auth.token.reuse_detected', 'Refresh Reuse Detected'), ('session.revoked', 'Session Revoked'), ('auth.password.reset_requested', 'Password Reset Requested'), ('auth.password.reset_completed', 'Password Reset Completed'), ('auth.password.reset_failed', 'Password Reset Failed'), ('auth.password.changed', 'Password Changed'), ('auth.password.change_failed', 'Password Change Failed'), ('auth.profile.updated', 'Profile Updated'), ('auth.reauthenticated', 'Reauthenticated'), ('auth.reauthentication_failed', 'Reauthentication Failed'), ('identity.signing_key.created', 'Signing Key Created'), ('identity.signing_key.rotated', 'Signing Key Rotated'), ('identity.access_token.rejected', 'Access Token Rejected'), ('auth.account.switched', 'Account Switched'), ('auth.lockout.locked', 'Account Locked'), ('auth.lockout.unlocked', 'Account Unlocked'), ('security.rate_limited', 'Rate Limited'), ('auth.reauthentication_required', 'Reauthentication Required'), ('auth.account.deleted', 'Account Deleted'), ('auth.login.new_device', 'New Device Login'), ('auth.login.not_me', 'Not Me Reported'), ('session.anomaly', 'Session Anomaly'), ('admin.action', 'Admin Action'), ('audit.retention.pruned', 'Audit Pruned'), ('service_account.created', 'Service Account Created'), ('service_account.secret_rotated', 'Service Account Secret Rotated'), ('service_account.updated', 'Service Account Updated'), ('auth.service_token.issued', 'Service Token Issued'), ('auth.service_token.failed', 'Service Token Failed'), ('org.created', 'Org Created'), ('org.updated', 'Org Updated'), ('org.deleted', 'Org Deleted'), ('org.member.role_changed', 'Org Member Role Changed'), ('org.member.removed', 'Org Member Removed'), ('org.invitation.created', 'Org Invitation Created'), ('org.invitation.revoked', 'Org Invitation Revoked'), ('org.invitation.accepted', 'Org Invitation Accepted'), ('org.invitation.accept_failed', 'Org Invitation Accept Failed'), ('auth.organization.switched', 'Organization Switched')], db_index=True, max_length=64),
        ),
        migrations.RunPython(link_existing_rows, migrations.RunPython.noop),
        migrations.RunPython(create_function, drop_function),
    ]
