"""`manage.py consume_queue_triggers`: the long-running consumer of every `queue` trigger."""

import time

from django.core.management.base import BaseCommand

from apps.logging import get_logger
from apps.triggers.consumers import BROKER_DOWN, QueueConfigError, consume, queue_bindings

logger = get_logger("flowdeck.triggers")


class Command(BaseCommand):
    help = ("Consume the queues of `queue` triggers (RabbitMQ queues, Redis streams) and start a run per "
            "message. Runs until stopped; --once drains every queue and exits.")

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Drain each queue once, then exit.")
        parser.add_argument("--poll-seconds", type=float, default=1.0,
                            help="How long to wait on one queue before looking at the next.")

    def handle(self, *args, once=False, poll_seconds=1.0, **options):
        while True:
            bindings = list(queue_bindings())
            for binding in bindings:
                try:
                    report = consume(binding, once=once, poll_seconds=poll_seconds)
                except QueueConfigError as exc:
                    self.stderr.write(f"{binding.workflow}: {exc}")
                    continue
                except BROKER_DOWN as exc:
                    # A broker that is down must not stop the other queues; the next round retries.
                    logger.warning("queue trigger broker unreachable", workflow=str(binding.workflow), error=str(exc))
                    continue
                if report.messages:
                    self.stdout.write(f"{binding.workflow} {binding.config['queue']}: {report.messages} message(s), "
                                      f"{dict(report.outcomes)}")
            if once:
                return
            if not bindings:
                time.sleep(poll_seconds)
