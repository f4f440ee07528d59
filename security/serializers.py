from rest_framework import serializers

from audit.models import AuditEvent
from core.fields import StrictCharField

# Context keys shown to users: what happened, never internal hashes or other people's details.
VISIBLE_CONTEXT = ("reason", "via", "scope", "changes", "device", "browser", "os", "network", "action",
                   "step_up", "remember_me", "changed", "sessions_revoked", "seconds")


class LinkTokenInput(serializers.Serializer):
    token = StrictCharField(max_length=512)


class UnlockInput(LinkTokenInput):
    # The deviceId this app signs in with: the returned deviceToken works for that device only.
    deviceId = StrictCharField(max_length=128, required=False, allow_blank=True, default="")


class DeviceTokenOutput(serializers.Serializer):
    deviceToken = serializers.CharField()


class SecurityEventOutput(serializers.ModelSerializer):
    createdAt = serializers.DateTimeField(source="created_at")
    ipAddress = serializers.CharField(source="ip_address", allow_null=True)
    userAgent = serializers.CharField(source="user_agent")
    sessionId = serializers.UUIDField(source="session_id", allow_null=True)
    details = serializers.SerializerMethodField()

    class Meta:
        model = AuditEvent
        fields = ["id", "event", "createdAt", "success", "ipAddress", "userAgent", "sessionId", "details"]

    def get_details(self, row) -> dict:
        return {k: v for k, v in (row.context or {}).items() if k in VISIBLE_CONTEXT}


class SecurityEventsOutput(serializers.Serializer):
    events = SecurityEventOutput(many=True)
    page = serializers.IntegerField()
    pageSize = serializers.IntegerField()
    hasNext = serializers.BooleanField()
