"""Helpers the tests import. Conftest files hold fixtures and hooks only; anything a test module
imports (a function, a class, a constant) lives here, once:

* ``auth``: every way a test signs in (API login, the login form, Playwright, a session without HTTP,
  a service account) and the bearer client;
* ``errors``: the one check of the contract's error envelope (``error_code``);
* ``races``: the one harness that runs calls or HTTP requests at the same moment in threads;
* ``agents``: the one set of browser User-Agent strings;
* ``mail``: the mail a flow sent and the token in its link;
* ``paths``: API paths shared by several test packages;
* ``tokens``: reading the claims of a compact JWT;
* ``mana_auth``: keys, forged tokens, fake HTTP servers and a clock for the client library's tests;
* ``transactions``: ``on_commit`` callbacks under the suite's default ``db`` fixture.
"""
