"""Broker transports: kombu's own, with two fixes that crash safety depends on.

The embedded broker (filesystem): kombu writes a message file in place, so a consumer polling
the folder can take the file before its bytes are there, fail to decode it and lose the message.
Here each message is written under a hidden name and renamed into the queue folder once complete
(a rename is atomic on POSIX).

Redis: when the connection to Redis drops while a worker holds an unacknowledged message (every
step attempt is acked late), kombu 5.7 tries to put the message back while closing the dead
channel, fails with an AttributeError, and the worker stops with "Unrecoverable error" instead
of reconnecting. Here that restore is given up with a warning: a restarted Redis has lost the
message anyway, and the engine's sweeper re-sends the attempt (its state is in the database).
"""

import logging
import os
import uuid
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


class RedisChannel(redis.Channel):
    QoS = RedisQoS


class RedisTransport(redis.Transport):
    Channel = RedisChannel
