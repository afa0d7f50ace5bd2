"""Reading a Redis stream for a queue trigger through a consumer group.

Each workflow reads a stream in its own consumer group (`flowdeck:workflow-<id>`), so every
workflow bound to a stream sees every entry, while several `consume_queue_triggers` processes
share one workflow's entries between them. An entry stays pending in the group until it is
acknowledged, which the caller does only after the entry's run is recorded. Pending entries are
read again before new ones: first this consumer's own (a handling that raised), then entries
another consumer has held for over a minute without acknowledging (it crashed), claimed with
XAUTOCLAIM. The trigger ledger knows an entry by its id, so reading one twice starts nothing new.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import redis

# Long enough that a live consumer still working on an entry keeps it.
CLAIM_IDLE_MS = 60_000
READ_COUNT = 100


@dataclass(frozen=True)
class StreamEntry:
    entry_id: str
    # None when the entry is not UTF-8 text (it cannot hold inputs).
    fields: dict[str, str] | None


def group_name(workflow_id: int) -> str:
    return f"flowdeck:workflow-{workflow_id}"


def consumer_name() -> str:
    """This process's name in the group: a restarted process is a new consumer, and what the old
    one held is claimed once it has been idle for CLAIM_IDLE_MS."""
    return f"{socket.gethostname()}-{os.getpid()}"


def start_id(since: datetime) -> str:
    """The stream id of `since`: a new group starts there, so entries written after the trigger
    was bound are read even if no consumer was running yet, and older history is not replayed.
    The group starts at the last id before that millisecond: an entry written in the very
    millisecond of the binding is `<ms>-0`, and a group's start is the last entry it skips."""
    return f"{int(since.timestamp() * 1000) - 1}-{2 ** 64 - 1}"


class StreamReader:
    """One consumer of one group on one stream."""

    def __init__(self, client: redis.Redis, stream: str, group: str, consumer: str):
        self.client, self.stream, self.group, self.consumer = client, stream, group, consumer

    def ensure_group(self, since: datetime) -> None:
        try:
            self.client.xgroup_create(self.stream, self.group, id=start_id(since), mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def backlog(self) -> Iterator[StreamEntry]:
        """Entries delivered before and not acknowledged: this consumer's own, then those
        another consumer left idle for CLAIM_IDLE_MS."""
        after = "0"
        while delivered := self._read(after, block_ms=None):
            yield from self._entries(delivered)
            after = _text(delivered[-1][0])
        cursor = "0-0"
        while True:
            cursor, claimed, *_ = self.client.xautoclaim(self.stream, self.group, self.consumer,
                                                          min_idle_time=CLAIM_IDLE_MS, start_id=cursor, count=READ_COUNT)
            yield from self._entries(claimed)
            if _text(cursor) == "0-0":
                return

    def new_entries(self, block_ms: int | None) -> list[StreamEntry]:
        """Entries no consumer of the group has been given, waiting up to `block_ms` for one."""
        return list(self._entries(self._read(">", block_ms=block_ms)))

    def ack(self, entry_id: str) -> None:
        self.client.xack(self.stream, self.group, entry_id)

    def _read(self, after: str, block_ms: int | None) -> list:
        answer = self.client.xreadgroup(self.group, self.consumer, {self.stream: after}, count=READ_COUNT,
                                        block=block_ms)
        if not answer:
            return []
        (_, delivered), = answer
        return delivered

    def _entries(self, delivered: list) -> Iterator[StreamEntry]:
        for entry_id, fields in delivered:
            entry_id = _text(entry_id)
            if not fields:
                # Deleted (XDEL, trimming) while pending: nothing left to run, so it leaves the pending list.
                self.ack(entry_id)
                continue
            try:
                yield StreamEntry(entry_id, {_text(key): _text(value) for key, value in fields.items()})
            except UnicodeDecodeError:
                yield StreamEntry(entry_id, fields=None)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
