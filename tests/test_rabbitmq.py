"""The ``rabbitmq`` integration against a real RabbitMQ node (tests/servers.py)."""

from __future__ import annotations

import base64
import contextlib
import time
import uuid

import orjson
import pytest
from eventhub.integrations.rabbitmq import RabbitMQIntegration

from eventhub.errors import ConfigError
from eventhub.testing import make_hub

from .servers import RABBIT_PASSWORD

pika = pytest.importorskip("pika")


@pytest.fixture(scope="session")
def rabbitmq():
    from .servers import RabbitMQ

    server = RabbitMQ()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def names():
    """Queue and exchange names of this test alone (the node is the session's)."""
    tag = uuid.uuid4().hex[:8]
    return {"queue": f"orders-{tag}", "exchange": f"billing-{tag}", "out": f"inv-{tag}"}


@pytest.fixture
def broker(rabbitmq, names):
    """A channel of the test's own, with the test's queues declared: ``orders``
    (consumed), and ``billing`` (a direct exchange) bound to ``out``."""
    connection = rabbitmq.connection()
    channel = connection.channel()
    channel.queue_declare(names["queue"], durable=True)
    channel.exchange_declare(names["exchange"], "topic", durable=True)
    channel.queue_declare(names["out"], durable=True)
    channel.queue_bind(names["out"], names["exchange"], routing_key="invoice.#")
    yield channel
    with contextlib.suppress(pika.exceptions.AMQPError):  # an outage test kills it
        connection.close()


def wait_for(condition, timeout=30):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.02)


def rabbit(rabbitmq, names, **options):
    settings = {
        "url": rabbitmq.url,
        "consume": [{"queue": names["queue"], "type": "order.created"}],
        "publish": [
            {
                "pattern": "invoice.*",
                "exchange": names["exchange"],
                "routing_key": "{type}",
            }
        ],
        **options,
    }
    return RabbitMQIntegration(**settings)


def send(channel, queue, body, **properties):
    channel.basic_publish(
        "", queue, body, pika.BasicProperties(delivery_mode=2, **properties)
    )


def depth(channel, queue):
    return channel.queue_declare(queue, passive=True).method.message_count


@pytest.fixture
def hub(tmp_path):
    with make_hub(tmp_path) as hub:
        yield hub


def orders(hub):
    return hub.bus.history("order.created", limit=None)


def test_messages_become_events_then_are_acknowledged(hub, rabbitmq, broker, names):
    for n in range(5):
        send(broker, names["queue"], orjson.dumps({"n": n}), message_id=f"o{n}")
    hub.register_integration("rabbit", rabbit(rabbitmq, names))
    hub.start()
    wait_for(lambda: len(orders(hub)) == 5)
    events = orders(hub)
    assert [e.data["n"] for e in events] == [0, 1, 2, 3, 4]
    assert [e.id for e in events] == ["o0", "o1", "o2", "o3", "o4"]
    assert {e.source for e in events} == {f"rabbit/{names['queue']}"}
    hub.stop()
    assert depth(broker, names["queue"]) == 0  # acknowledged


def test_a_redelivered_message_is_one_event(hub, rabbitmq, broker, names):
    for _ in range(3):
        send(broker, names["queue"], b'{"n": 1}', message_id="same")
    send(broker, names["queue"], b'{"order": "a-9"}')
    made = rabbit(
        rabbitmq,
        names,
        consume=[
            {"queue": names["queue"], "type": "order.created", "id_field": "order"}
        ],
    )
    hub.register_integration("rabbit", made)
    hub.start()
    wait_for(lambda: len(orders(hub)) == 2)
    assert sorted(e.id for e in orders(hub)) == ["a-9", "same"]


def test_a_body_of_another_type_is_kept_as_it_is(hub, rabbitmq, broker, names):
    send(broker, names["queue"], b"\x00\x01binary", content_type="application/pdf")
    send(broker, names["queue"], b'{"ok": 1}', content_type="application/vnd.x+json")
    hub.register_integration("rabbit", rabbit(rabbitmq, names))
    hub.start()
    wait_for(lambda: len(orders(hub)) == 2)
    binary, typed = orders(hub)
    assert (binary.data, binary.datacontenttype) == (
        b"\x00\x01binary",
        "application/pdf",
    )
    assert typed.data == {"ok": 1}


def test_a_message_that_cannot_be_an_event_is_kept_in_the_log(
    hub, rabbitmq, broker, names
):
    send(broker, names["queue"], b"not json {", message_id="bad")
    send(broker, names["queue"], orjson.dumps({"blob": "x" * 5000}))
    send(broker, names["queue"], b'{"n": 1}')
    hub.register_integration("rabbit", rabbit(rabbitmq, names, max_bytes=2000))
    hub.start()
    wait_for(lambda: len(hub.bus.history("message.rejected", limit=None)) == 2)
    wait_for(lambda: len(orders(hub)) == 1)
    bad, big = hub.bus.history("message.rejected", limit=None)
    assert bad.data == b"not json {" and "not JSON" in bad.extensions["reason"]
    assert big.extensions["truncated"] is True and big.extensions["bodysize"] > 5000
    hub.stop()
    assert depth(broker, names["queue"]) == 0


def test_with_broker_dead_letters_a_bad_message_goes_to_the_queues_dlx(
    hub, rabbitmq, broker, names
):
    dead = names["queue"] + "-dead"
    broker.queue_declare(dead, durable=True)
    queue = names["queue"] + "-dlx"
    broker.queue_declare(
        queue,
        durable=True,
        arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead},
    )
    send(broker, queue, b"not json {")
    send(broker, queue, b'{"n": 2}')
    made = rabbit(
        rabbitmq,
        names,
        consume=[{"queue": queue, "type": "order.created", "dead_letters": "broker"}],
    )
    hub.register_integration("rabbit", made)
    hub.start()
    wait_for(lambda: len(orders(hub)) == 1)
    wait_for(lambda: depth(broker, dead) == 1)
    method, _, body = broker.basic_get(dead, auto_ack=True)
    assert body == b"not json {"
    assert hub.bus.history("message.rejected", limit=None) == []


def test_matching_events_are_published_with_confirms(hub, rabbitmq, broker, names):
    hub.register_integration("rabbit", rabbit(rabbitmq, names, consume=[]))
    hub.start()
    sent = hub.bus.publish("invoice.paid", {"invoice": 7}, subject="inv/7")
    hub.bus.publish("order.shipped", {"order": 8})
    hub.bus.drain()
    wait_for(lambda: depth(broker, names["out"]) == 1)
    method, properties, body = broker.basic_get(names["out"], auto_ack=True)
    assert method.routing_key == "invoice.paid"
    assert properties.delivery_mode == 2 and properties.message_id == sent.id
    assert orjson.loads(body)["data"] == {"invoice": 7}


def test_an_unroutable_event_is_retried_not_dropped(hub, rabbitmq, broker, names):
    made = rabbit(
        rabbitmq,
        names,
        consume=[],
        publish=[
            {
                "pattern": "invoice.*",
                "exchange": names["exchange"],
                "routing_key": "nowhere.{type}",
            }
        ],
    )
    hub.register_integration("rabbit", made)
    hub.start()
    hub.bus.publish("invoice.paid", {"invoice": 1})
    time.sleep(0.5)  # the first attempt: returned by the broker, to be retried
    assert depth(broker, names["out"]) == 0 and not hub.bus.dead_letters()
    broker.queue_bind(names["out"], names["exchange"], routing_key="nowhere.#")
    wait_for(lambda: depth(broker, names["out"]) == 1, 30)  # the retry (1-2 s)


def test_publish_message_and_consume_messages(rabbitmq, names):
    made = rabbit(rabbitmq, names, consume=[], publish=[])
    connection = rabbitmq.connection()
    connection.channel().queue_declare(names["queue"], durable=True)
    made.publish_message(names["queue"], {"a": 1})
    made.publish_message(names["queue"], b"raw")
    seen = []
    assert made.consume_messages(names["queue"], seen.append, timeout=1) == 2
    assert seen == [{"a": 1}, b"raw"]
    made.stop()
    connection.close()


def test_errors_do_not_show_the_password(rabbitmq, names):
    wrong = rabbitmq.url.replace(RABBIT_PASSWORD, "wrong-Password-456")
    made = rabbit(rabbitmq, names, url=wrong, consume=[], publish=[])
    with pytest.raises(Exception) as caught:
        made.publish_message(names["queue"], {"a": 1})
    assert "wrong-Password-456" not in str(caught.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": "http://x"}, "amqp://"),
        ({"consume": [{"queue": "q"}]}, r"consume\[0\] needs type"),
        (
            {"consume": [{"queue": "q", "type": "t", "dead_letters": "x"}]},
            "dead_letters",
        ),
        ({"publish": [{"exchange": "x"}]}, r"publish\[0\] needs pattern"),
        ({"publish": [{"pattern": "a", "routing_key": "{nope}"}]}, "routing_key"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_settings(options, message):
    settings = {"url": options.pop("url", "amqp://u:p@127.0.0.1:1/%2F"), **options}
    with pytest.raises(ConfigError, match=message):
        RabbitMQIntegration(**settings)


def test_base64_is_not_needed_for_json(hub, rabbitmq, broker, names):
    """A JSON body is data, not base64 of itself (CloudEvents structured JSON)."""
    send(broker, names["queue"], b'{"n": 3}', content_type="application/json")
    hub.register_integration("rabbit", rabbit(rabbitmq, names))
    hub.start()
    wait_for(lambda: len(orders(hub)) == 1)
    structured = orjson.loads(orders(hub)[0].to_json())
    assert structured["data"] == {"n": 3} and "data_base64" not in structured
    assert base64  # (binary bodies are data_base64: test above)


@pytest.mark.slow
def test_sigkill_while_messages_flow_both_ways_loses_none(
    tmp_path, rabbitmq, broker, names
):
    """2,000 messages in (with message ids) and 2,000 events out while the daemon
    is SIGKILLed: every one arrives; inbound duplicates none (ids), outbound at
    most the delivery batch in flight."""
    import textwrap

    from eventhub import Hub

    from .test_daemon import Daemon

    total = 2000
    config = tmp_path / "eventhub.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            db = "hub.db"
            [log]
            level = "WARNING"
            [daemon]
            shutdown_timeout = 5
            [integrations.rabbit]
            kind = "rabbitmq"
            url = "{rabbitmq.url}"
            batch_size = 50
            consume = [{{ queue = "{names["queue"]}", type = "order.created" }}]
            publish = [{{ pattern = "invoice.*", exchange = "{names["exchange"]}" }}]
            """
        )
    )
    for n in range(total):
        send(broker, names["queue"], orjson.dumps({"n": n}), message_id=f"m{n}")
    daemon = Daemon(tmp_path, config, log=tmp_path / "daemon.log").start()
    with Hub(tmp_path / "hub.db", load_entrypoints=False) as app:
        app.bus.publish_many(
            [{"type": "invoice.paid", "data": {"n": n}} for n in range(total)]
        )
    try:
        wait_for(
            lambda: (
                depth(broker, names["queue"]) < total - 200
                and depth(broker, names["out"]) > 200
            ),
            120,
        )
        daemon.proc.send_signal(9)
        daemon.proc.wait(30)
        daemon = Daemon(tmp_path, config, log=tmp_path / "daemon.log").start()
        wait_for(lambda: depth(broker, names["queue"]) == 0, 180)

        def delivered():
            return depth(broker, names["out"]) >= total

        wait_for(delivered, 180)
        time.sleep(1)  # the last batch acknowledged
    finally:
        daemon.close()
    with Hub(tmp_path / "hub.db", load_entrypoints=False) as app:
        inbound = app.bus.history("order.created", limit=None)
        outbound_ids = {e.id for e in app.bus.history("invoice.paid", limit=None)}
    assert sorted(e.id for e in inbound) == sorted(f"m{n}" for n in range(total))
    pushed = []
    while (got := broker.basic_get(names["out"], auto_ack=True))[0] is not None:
        pushed.append(got[1].message_id)
    assert set(pushed) == outbound_ids  # lost: none
    assert len(pushed) - total <= 100  # duplicates: the delivery batch in flight


def test_the_consumer_and_the_publisher_come_back_after_an_outage(
    hub, rabbitmq, broker, names
):
    hub.register_integration("rabbit", rabbit(rabbitmq, names))
    hub.start()
    hub.bus.publish("invoice.paid", {"invoice": 1})
    wait_for(lambda: depth(broker, names["out"]) == 1)
    rabbitmq.kill()
    hub.bus.publish("invoice.paid", {"invoice": 2})  # while the broker is down
    rabbitmq.start()  # durable queues and persistent messages survive
    connection = rabbitmq.connection()
    channel = connection.channel()
    send(channel, names["queue"], b'{"n": 1}', message_id="after")
    wait_for(lambda: [e.id for e in orders(hub)] == ["after"], 60)
    wait_for(lambda: depth(channel, names["out"]) == 2, 60)
    connection.close()
