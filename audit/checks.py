from django.conf import settings
from django.core.checks import Tags, Warning, register

from audit.app_settings import app_settings


@register(Tags.security)
def sealer_check(app_configs, **kwargs):
    """Audit rows that nobody seals are not tamper-evident (docs/audit.md)."""
    schedule = getattr(settings, "CELERY_BEAT_SCHEDULE", {}) or {}
    if app_settings.SEAL_ON_COMMIT or any(entry.get("task") == "audit.tasks.audit_seal"
                                          for entry in schedule.values()):
        return []
    return [Warning(
        "Nothing seals the audit trail: AUDIT['SEAL_ON_COMMIT'] is off and no beat entry runs "
        "audit.tasks.audit_seal.",
        hint="Keep 'audit-seal' in CELERY_BEAT_SCHEDULE (and run celery beat), or run "
             "'manage.py audit_seal --loop', or set AUDIT['SEAL_ON_COMMIT'] = True.",
        id="audit.W001",
    )]
