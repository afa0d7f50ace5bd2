"""Messages waiting in the broker's own queues, asked of the broker itself: /metrics exports them
and the platform's Workers page shows them beside the workers consuming each queue.

kombu's passive queue declare answers on every transport Flowdeck uses: LLEN on Redis,
queue_declare(passive) on RabbitMQ, a count of message files on the filesystem broker. The whole
question is bounded in time (socket timeouts, and a deadline on the thread that asks), so a broker
that is down or stuck makes the caller report it rather than hang.
"""

from __future__ import annotations

import threading

from django.conf import settings

BROKER_TIMEOUT_SECONDS = 2.0


class BrokerUnavailable(Exception):
    """The broker did not answer in time, or refused the connection; the message says which."""


def known_queues() -> list[str]:
    """The queues steps and tasks are sent to: the default queue and every step type's queue."""
    from apps.catalog.registry import all_step_types

    return sorted({settings.CELERY_TASK_DEFAULT_QUEUE, *(step.queue for step in all_step_types())})


def message_counts(queues: list[str], timeout: float | None = None) -> dict[str, int | None]:
    """Messages waiting in each queue; None for a queue the broker has never seen (it holds
    nothing yet). Raises BrokerUnavailable when the broker does not answer within `timeout`
    (BROKER_TIMEOUT_SECONDS by default)."""
    timeout = BROKER_TIMEOUT_SECONDS if timeout is None else timeout
    outcome: dict = {}

    def ask() -> None:
        try:
            outcome["counts"] = _ask_broker(queues, timeout)
        except Exception as exc:  # noqa: BLE001  (every failure means the same: no answer)
            outcome["error"] = exc

    # A daemon thread: one stuck past its socket timeouts cannot keep the process from exiting.
    asking = threading.Thread(target=ask, name="broker-queue-depths", daemon=True)
    asking.start()
    asking.join(timeout)
    if asking.is_alive():
        raise BrokerUnavailable(f"{broker_label()} did not answer within {timeout:g} s")
    if "error" in outcome:
        raise BrokerUnavailable(f"{broker_label()} does not answer: {outcome['error']}") from outcome["error"]
    return outcome["counts"]


def broker_label() -> str:
    """The broker's scheme and host, without credentials."""
    url = settings.CELERY_BROKER_URL
    scheme = url.split("://", 1)[0]
    host = url.split("@")[-1].split("://")[-1].split("/")[0]
    return f"{scheme}://{host}" if host else f"{scheme}://"


def _ask_broker(queues: list[str], timeout: float) -> dict[str, int | None]:
    from amqp.exceptions import NotFound
    from kombu.exceptions import ChannelError

    from apps.celery import app

    # Read by the Redis transport (socket_*) and py-amqp (read/write_timeout); others ignore them.
    timeouts = {"socket_timeout": timeout, "socket_connect_timeout": timeout, "read_timeout": timeout,
                "write_timeout": timeout}
    counts: dict[str, int | None] = {}
    with app.connection_for_read(connect_timeout=timeout, transport_options=timeouts) as conn:
        conn.ensure_connection(max_retries=1, timeout=timeout)
        for queue in queues:
            # A failed passive declare closes the channel on RabbitMQ: one channel per queue.
            channel = conn.channel()
            try:
                _, messages, _ = channel.queue_declare(queue=queue, passive=True)
                counts[queue] = messages
            except (ChannelError, NotFound):
                counts[queue] = None
            finally:
                try:
                    channel.close()
                except Exception:  # noqa: BLE001  (already closed by the broker)
                    pass
    return counts
