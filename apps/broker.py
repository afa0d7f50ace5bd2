"""Broker transports: kombu's own, with two fixes that crash safety depends on.

The embedded broker (filesystem): kombu writes a message file in place, so a consumer polling
the folder can take the file before its bytes are there, fail to decode it and lose the message.
Here each message is written under a hidden name and renamed into the queue folder once complete
(a rename is atomic on POSIX).

Redis: when the connection to Redis drops while a worker holds an unacknowledged message (every
step attempt is acked late), kombu 5.7 can leave the lost connection's channel without a way back
to Redis: putting the message back while closing it, and the late ack (or reject) of a step that
finishes during the reconnect, fail with an AttributeError, and the worker stops with
"Unrecoverable error" instead of reconnecting. Here all three give up with a warning: a restarted
Redis has lost the message anyway, and the step attempt's state is in the database, so the
engine's sweeper re-sends an unfinished attempt and a redelivered finished one does nothing.
"""

import logging
import os
import uuid
from contextlib import contextmanager
from time import monotonic

from kombu.transport import filesystem, redis
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        filename = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, filename)
        # A leading dot keeps the partial file out of every queue's listing (see Channel._get).
        partial = os.path.join(self.data_folder_out, f".{filename}.part")
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


logger = logging.getLogger("flowdeck.broker")


class RedisQoS(redis.QoS):
    def restore_unacked(self, client=None):
        try:
            super().restore_unacked(client)
        except (AttributeError, *redis.Transport.connection_errors) as exc:
            logger.warning("could not put %d unacknowledged message(s) back after losing Redis (%r); the sweeper "
                           "re-sends their step attempts", len(self._delivered), exc)
            self._delivered.clear()

    def ack(self, delivery_tag):
        with self._given_up_on_a_lost_channel("acknowledge", delivery_tag):
            super().ack(delivery_tag)

    def reject(self, delivery_tag, requeue=False):
        with self._given_up_on_a_lost_channel("requeue" if requeue else "reject", delivery_tag):
            super().reject(delivery_tag, requeue=requeue)

    @contextmanager
    def _given_up_on_a_lost_channel(self, action, delivery_tag):
        # How a channel gets lost: Redis drops the socket while a BRPOP is pending on it (the worker
        # has a free slot), so celery's collect() of the connection cannot close the channel, yet lets
        # go of the transport's client; the channel's own close later fails to rebuild its client pool
        # (the restore above), and so does a late ack on it (`_connparams` reads the released client).
        # Celery forgives only connection errors there (Message.ack_log_error), so the AttributeError
        # stopped the worker. Only that error on a closed channel is given up: elsewhere it is a bug.
        try:
            yield
        except AttributeError as exc:
            if not self.channel.closed:
                raise
            logger.warning("could not %s message %s on the channel of a lost connection to Redis (%r); the "
                           "sweeper re-sends its step attempt if it is unfinished", action, delivery_tag, exc)


class RedisChannel(redis.Channel):
    QoS = RedisQoS


class RedisTransport(redis.Transport):
    Channel = RedisChannel


class RedisSentinelChannel(redis.SentinelChannel):
    QoS = RedisQoS


class RedisSentinelTransport(redis.SentinelTransport):
    """Redis behind Sentinel: each connection asks the sentinels for the current master, so a
    failover is a reconnect like a Redis restart, with the same fixes."""

    Channel = RedisSentinelChannel
