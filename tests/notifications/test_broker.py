"""Mail and the real broker: a request publishes a delivery task into Redis after commit; when the
broker is down the request still answers at once and the message waits for ``outbox_flush``."""

import os
import time

import pytest
from django.core import mail
from kombu.utils.json import loads as kombu_loads

from config.celery import app as celery_app
from notifications.models import OutboxMessage, OutboxStatus
from notifications.services import outbox_flush
from notifications.tasks import outbox_deliver

# Real commits: a request publishes its delivery task into the real broker after commit, where a worker
# (another connection) reads the message's row; these tests see what that worker would see.
pytestmark = pytest.mark.django_db(transaction=True)

REDIS_URL = os.environ.get("REDIS_URL", "")
CLOSED_PORT = "redis://127.0.0.1:1/0"
QUEUE = "celery"


def _reset_broker_pools():
    """Forget pooled connections so the next publish uses the new broker URL (as Celery does after fork)."""
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def use_broker():
    """Publish for real (not eagerly) to the given broker URL; restored afterwards."""
    saved = celery_app.conf.broker_url

    def switch(url):
        celery_app.conf.task_always_eager = False
        celery_app.conf.broker_url = url
        _reset_broker_pools()

    yield switch
    celery_app.conf.broker_url = saved
    celery_app.conf.task_always_eager = True
    _reset_broker_pools()


def _register(api, email="ada@example.com"):
    start = time.monotonic()
    r = api.post("/api/v1/auth/register", {"email": email, "password": "a-long-enough-pass"}, format="json")
    return r, time.monotonic() - start


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="needs a real Redis: set REDIS_URL")
def test_registration_publishes_a_task_into_redis_and_the_task_delivers(api, db, use_broker):
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.delete(QUEUE)
    use_broker(REDIS_URL)
    try:
        r, _ = _register(api)
        assert r.status_code == 202
        assert client.llen(QUEUE) == 1  # one task message, published after commit
        message = OutboxMessage.objects.get()
        assert message.status == OutboxStatus.PENDING and mail.outbox == []  # not delivered by the request

        raw = kombu_loads(client.lpop(QUEUE))
        assert raw["headers"]["task"] == "notifications.tasks.outbox_deliver"
        args, kwargs, _embed = kombu_loads(_body(raw))
        assert [str(a) for a in args] == [str(message.pk)]
        assert "ada@example.com" not in str(raw)  # the broker carries an id, never the mail or its link
    finally:
        client.delete(QUEUE)

    assert outbox_deliver(*args, **kwargs) is True  # what the worker runs for that message
    assert len(mail.outbox) == 1 and "/verify-email?token=" in mail.outbox[0].body
    message.refresh_from_db()
    assert message.status == OutboxStatus.SENT and message.payload_encrypted == ""


def _body(raw):
    import base64

    body = raw["body"]
    if raw.get("properties", {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    return body


def test_broker_down_the_request_succeeds_quickly_and_flush_delivers_later(api, db, use_broker):
    use_broker(CLOSED_PORT)
    r, elapsed = _register(api)
    assert r.status_code == 202
    assert elapsed < 3, f"the request waited {elapsed:.1f}s on a dead broker"
    print(f"request with the broker down: {elapsed * 1000:.0f} ms")
    message = OutboxMessage.objects.get()
    assert message.status == OutboxStatus.PENDING and message.attempts == 0 and mail.outbox == []

    r, elapsed = _register(api, "bob@example.com")  # the second request does not wait either
    assert r.status_code == 202 and elapsed < 3
    assert OutboxMessage.objects.filter(status=OutboxStatus.PENDING).count() == 2

    assert outbox_flush() == 2  # the periodic task, once the broker (or just the worker) is back
    assert sorted(m.to[0] for m in mail.outbox) == ["ada@example.com", "bob@example.com"]
    assert all("/verify-email?token=" in m.body for m in mail.outbox)
    assert set(OutboxMessage.objects.values_list("status", "payload_encrypted")) == {(OutboxStatus.SENT, "")}


@pytest.fixture
def silent_broker():
    """A TCP server that accepts connections and never answers: a hung broker."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held = []

    def accept():
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    try:
        server.shutdown(socket.SHUT_RDWR)  # wakes the accept() above
    except OSError:
        pass
    server.close()
    for conn in held:
        conn.close()


def test_a_hung_broker_does_not_hang_the_request(api, db, use_broker, silent_broker):
    use_broker(silent_broker)
    r, elapsed = _register(api)
    assert r.status_code == 202
    assert elapsed < 3, f"the request waited {elapsed:.1f}s on a hung broker"
    assert OutboxMessage.objects.get().status == OutboxStatus.PENDING
    assert outbox_flush() == 1 and len(mail.outbox) == 1
