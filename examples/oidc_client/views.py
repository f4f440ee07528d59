"""Four views: home (who is signed in), login (to the provider), callback (code -> tokens, the id_token
verified by Authlib against the provider's JWKS), logout (RP-initiated logout at the provider)."""

from html import escape
from urllib.parse import urlencode

from authlib.integrations.django_client import OAuth
from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import redirect

oauth = OAuth()
oauth.register("mana")

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Example app</title></head>
<body><main>{body}</main></body></html>"""


def home(request):
    user = request.session.get("user")
    if user:
        body = (f'<h1>Example app</h1><p id="who">Signed in as {escape(user["email"])} ({escape(user["name"])})</p>'
                '<p><a id="logout" href="/logout">Sign out</a></p>')
    else:
        body = '<h1>Example app</h1><p id="who">Not signed in</p><p><a id="login" href="/login">Sign in</a></p>'
    return HttpResponse(PAGE.format(body=body))


def login(request):
    return oauth.mana.authorize_redirect(request, f"{settings.BASE_URL}/callback")


def callback(request):
    token = oauth.mana.authorize_access_token(request)  # checks state, sends the PKCE verifier, verifies id_token
    claims = token["userinfo"]
    request.session["user"] = {"sub": claims["sub"], "email": claims.get("email", ""), "name": claims.get("name", "")}
    request.session["id_token"] = token["id_token"]
    return redirect("/")


def logout(request):
    id_token = request.session.get("id_token", "")
    request.session.flush()
    metadata = oauth.mana.load_server_metadata()
    query = urlencode({"id_token_hint": id_token, "post_logout_redirect_uri": f"{settings.BASE_URL}/",
                       "state": "signed-out"})
    return redirect(f"{metadata['end_session_endpoint']}?{query}")
