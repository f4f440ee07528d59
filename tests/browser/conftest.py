"""Real-browser tests: Debian's Chromium (/usr/bin/chromium) driven by Playwright's Python package.
Nothing is downloaded from a browser vendor; without the binary the tests skip with the reason."""

import os
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in this thread; Django's ORM calls from the test body
# (factories, assertions) are still plain synchronous code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="module")
def chromium():
    # Module scope: Playwright's sync API keeps an event loop running in this thread while it is
    # open, and later asyncio tests (tests/mana_auth) need the thread without one.
    if not Path(CHROMIUM).exists():
        pytest.skip(f"needs Chromium at {CHROMIUM} (apt-get install -y chromium); .ci/run installs it")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package (dev extras)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield browser
        browser.close()


@pytest.fixture
def site(live_server, settings):
    """The live server over plain http as in DEBUG: cookies without Secure (so no __Host- prefix),
    no HTTPS redirect. The server's middleware was built before these settings, so it is rebuilt."""
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.handlers.wsgi import WSGIHandler
    from django.test.testcases import _MediaFilesHandler

    settings.SECURE_SSL_REDIRECT = False
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    settings.CSRF_COOKIE_NAME = "csrftoken"
    settings.SESSION_COOKIE_NAME = "mca_session"
    httpd = live_server.thread.httpd
    previous = httpd.get_app()
    httpd.set_app(StaticFilesHandler(_MediaFilesHandler(WSGIHandler())))
    yield live_server.url
    httpd.set_app(previous)


@pytest.fixture
def new_page(chromium):
    contexts = []

    def make(user_agent=None):
        context = chromium.new_context(user_agent=user_agent) if user_agent else chromium.new_context()
        context.set_default_timeout(15000)
        contexts.append(context)
        return context, context.new_page()

    yield make
    for context in contexts:
        context.close()
