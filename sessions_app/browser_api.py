"""``GET /api/v1/auth/session`` and ``GET /api/v1/auth/token``: the browser's view of its session.

``session`` answers on a fresh cookie cache from SessionFastPathMiddleware before this view is
reached; this view is the fallback (Bearer, stale or missing cache) and builds the same JSON.
"""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.serializers import UserOutput
from core.errors import NotAuthenticated
from core.responses import secret_response
from core.schema import ERRORS
from sessions_app.authentication import SessionCookieAuthentication
from sessions_app.browser import cookie_cache_ok, session_payload
from sessions_app.middleware import session_response_headers
from sessions_app.serializers import SessionOutput, session_envelope_data
from sessions_app.services import session_access_token_issue

SessionEnvelope = inline_serializer("SessionEnvelope", {"user": UserOutput(), "session": SessionOutput()})
BrowserToken = inline_serializer("BrowserToken", {"accessToken": serializers.CharField(),
                                                  "expiresIn": serializers.IntegerField()})


class SessionApi(APIView):
    @extend_schema(responses={200: SessionEnvelope, **ERRORS}, tags=["sessions"],
                   description="The signed-in user and session, by session cookie (cookie cache: no database "
                               "query while fresh) or Bearer token.")
    def get(self, request):
        snapshot = getattr(request.auth, "snapshot", None)
        if snapshot is not None:
            data = {"user": snapshot["user"], "session": session_payload(snapshot["session"])}
        else:
            data = session_envelope_data(request.user, request.auth.session)
        return session_response_headers(Response(data))


class TokenApi(APIView):
    """An access token for the browser's session, so web apps keep no refresh token in script reach."""

    authentication_classes = [SessionCookieAuthentication]

    @extend_schema(responses={200: BrowserToken, **ERRORS}, tags=["sessions"])
    def get(self, request):
        session = getattr(request.auth, "session", None)
        if session is None:
            raise NotAuthenticated()
        access = session_access_token_issue(session)
        return secret_response({"accessToken": access.token, "expiresIn": access.expires_in})


session_view = cookie_cache_ok(SessionApi.as_view())
token_view = TokenApi.as_view()
