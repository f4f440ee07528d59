"""Signing in, once per channel: the API login (``login_attempt`` sends it, ``login`` also insists it
succeeded), the login form (``page_login``), a real browser (``browser_sign_in``), a session made
without HTTP (``signed_in``), a service account (``obtain``); and the bearer client for a token."""

from rest_framework.test import APIClient

from tests.factories import PASSWORD
from tests.support.paths import INTROSPECT, LOGIN, SERVICE_TOKEN


def login_attempt(client, email, password=PASSWORD, *, ip=None, ua=None, meta=None, **body):
    """POST the API login; returns the response as it is. ``ip``/``ua`` set REMOTE_ADDR and the
    User-Agent for this request (else the client's defaults); ``body`` adds fields (deviceId, ...)."""
    extra = dict(meta or {})
    if ip is not None:
        extra["REMOTE_ADDR"] = ip
    if ua is not None:
        extra["HTTP_USER_AGENT"] = ua
    return client.post(LOGIN, {"email": email, "password": password, **body}, format="json", **extra)


def login(client, email, password=PASSWORD, **kwargs) -> dict:
    """The API login, which must succeed: its JSON body (accessToken, refreshToken, session, user...)."""
    response = login_attempt(client, email, password, **kwargs)
    assert response.status_code == 200, response.content
    return response.json()


def bearer(token) -> APIClient:
    """An API client that sends ``token`` (an access token, or a login/refresh body holding one)."""
    if isinstance(token, dict):
        token = token["accessToken"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def signed_in(user) -> APIClient:
    """A bearer client for a fresh device session of ``user`` made by the service, without a login
    request (``client.pair`` is its TokenPair, ``client.user`` the user)."""
    from sessions_app.services import session_create

    pair = session_create(user=user)
    client = bearer(pair.access_token)
    client.pair = pair
    client.user = user
    return client


def page_login(client, email, password=PASSWORD, remember=False, **extra):
    """POST the login form (a browser session); returns the response."""
    data = {"email": email, "password": password, **extra}
    if remember:
        data["remember_me"] = "on"
    return client.post("/login", data)


def session_cookie(client):
    from sessions_app.app_settings import app_settings

    return client.cookies.get(app_settings.SESSION_COOKIE)


def cache_cookie(client):
    from sessions_app.app_settings import app_settings

    return client.cookies.get(app_settings.CACHE_COOKIE)


def browser_sign_in(page, site, email, *, remember=False, add=False):
    """Sign in through the login page in a Playwright ``page`` and wait for the account page."""
    page.goto(f"{site}/login" + ("?add=1" if add else ""))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    if remember:
        page.get_by_label("Stay signed in").check()
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(f"{site}/account")


def obtain(client, client_id, client_secret):
    """POST the service-token endpoint (a service account's sign-in); returns the response."""
    return client.post(SERVICE_TOKEN, {"clientId": client_id, "clientSecret": client_secret}, format="json")


def introspect(client, token):
    return client.post(INTROSPECT, {"token": token}, format="json")
