"""Beat's scheduler: django-celery-beat's DatabaseScheduler that also writes beat's heartbeat
on every tick (at least every 5 s, its longest sleep).

django-celery-beat saves a task's `last_run_at` lazily and only when a task is due, so it cannot
say whether beat is running; a heartbeat written by the loop itself can. It comes from beat, not
from a task a worker runs, so busy workers cannot make beat look stopped.
"""

import socket
import time

from django.db import connection
from django_celery_beat.schedulers import DatabaseScheduler

from apps.logging import get_logger
from apps.platform.liveness import record_heartbeat, record_stopped
from apps.platform.models import ProcessKind

logger = get_logger("flowdeck.platform")
MIN_WRITE_INTERVAL_SECONDS = 1.0


class HeartbeatScheduler(DatabaseScheduler):
    _last_write = 0.0

    @property
    def heartbeat_name(self) -> str:
        return f"beat@{socket.gethostname()}"

    def tick(self, *args, **kwargs):
        interval = super().tick(*args, **kwargs)
        if time.monotonic() - self._last_write >= MIN_WRITE_INTERVAL_SECONDS:
            try:
                record_heartbeat(ProcessKind.BEAT, self.heartbeat_name)
                self._last_write = time.monotonic()
            except Exception as exc:  # noqa: BLE001  (the database may be back at the next tick)
                logger.warning("could not write beat's heartbeat", error=str(exc))
                connection.close()
        return interval

    def close(self):
        super().close()
        try:
            record_stopped(ProcessKind.BEAT, self.heartbeat_name)
        except Exception as exc:  # noqa: BLE001
            logger.warning("could not mark beat stopped", error=str(exc))
