"""The broker transport: one redis-py client per kombu channel, not one per publish."""
from __future__ import annotations

import threading
import uuid

import redis
from celery import Celery

import celeryconfig
from common.broker import Transport
from tests.support.servers import drop_keys


def app_for(settings) -> Celery:
    app = Celery(f"broker-test-{uuid.uuid4().hex[:6]}", set_as_current=False)
    app.config_from_object(celeryconfig.from_settings(settings))
    return app


def test_redis_urls_use_the_shared_client_transport(settings):
    with app_for(settings).connection_for_write() as connection:
        assert isinstance(connection.transport, Transport)


def test_rediss_urls_keep_their_tls(settings):
    with app_for(settings.replace(broker_url="rediss://127.0.0.1:6380/0")).connection_for_write() as connection:
        assert connection.transport_cls == "rediss" and connection.ssl  # kombu's TLS defaults still apply
        assert isinstance(connection.transport, Transport)


def test_publishing_builds_no_redis_client_per_message(settings, monkeypatch):
    prefix = f"probe-{uuid.uuid4().hex[:8]}:"  # a key prefix no worker reads
    app = app_for(settings.replace(celery_key_prefix=prefix))
    me, built = threading.get_ident(), []
    original = redis.Redis.__init__

    def counting(self, *args, **kwargs):
        if threading.get_ident() == me:  # other threads of the test process (a worker) are not ours
            built.append(type(self).__name__)
        original(self, *args, **kwargs)

    try:
        with app.producer_or_acquire() as producer:
            app.send_task("probe.nothing", producer=producer, ignore_result=True)  # declares, connects
            monkeypatch.setattr(redis.Redis, "__init__", counting)
            for _ in range(5):
                app.send_task("probe.nothing", producer=producer, ignore_result=True)
            with producer.batch():
                app.send_task("probe.nothing", producer=producer, ignore_result=True)
        assert built == []
    finally:
        monkeypatch.undo()
        drop_keys(settings.broker_url, prefix)
        app.close()
