from rest_framework.response import Response
from rest_framework.views import APIView

from mana_auth.drf import HasRole, IsAuthenticated, IsSessionActive, principal


def _who(request) -> dict:
    me = principal(request)
    return {"sub": me.user_id, "email": me.email, "role": me.role, "sessionId": me.session_id}


class HelloApi(APIView):
    """Any valid token, verified locally (no call to the provider per request)."""

    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response({"hello": principal(request).email or principal(request).user_id, **_who(request)})


class AdminOnlyApi(APIView):
    permission_classes = [HasRole("admin")]

    def get(self, request):
        return Response({"admin": True, **_who(request)})


class SensitiveApi(APIView):
    """High-value: also asks the provider (introspection, cached ~10 s) whether the session still lives."""

    permission_classes = [IsAuthenticated, IsSessionActive]

    def get(self, request):
        return Response({"sensitive": True, **_who(request)})
