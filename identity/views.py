from django.utils.cache import patch_cache_control
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from identity.app_settings import app_settings
from identity.services.keys import jwks


class JwksApi(APIView):
    """The public signing keys (also at /.well-known/jwks.json)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        responses=inline_serializer("Jwks", {"keys": serializers.ListField(child=serializers.DictField())}),
        tags=["tokens"],
    )
    def get(self, request):
        response = Response(jwks())
        # Short enough that a rotated-in key (published a day ahead) is always known in time.
        patch_cache_control(response, public=True, max_age=app_settings.JWKS_MAX_AGE)
        return response
