"""The Celery application. Workers and beat load Django settings (CELERY_* keys) from here."""

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_init, worker_process_init, worker_process_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apps.settings")

app = Celery("flowdeck")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Each worker writes its liveness record (queues, busy processes, heartbeat) to the database.
app.steps["worker"].add("apps.platform.liveness:WorkerLiveness")


def _close_old_connections(**kwargs):
    # With connections reused across tasks (CELERY_DB_REUSE_MAX), drop expired or broken ones the
    # way Django does around each request.
    from django.db import close_old_connections

    close_old_connections()


@worker_init.connect
def _connection_hygiene_in_workers(**kwargs):
    # Only in worker processes (children inherit it): tasks applied in a web or test process
    # must not close that process's connection in the middle of its transaction.
    task_prerun.connect(_close_old_connections, weak=False)
    task_postrun.connect(_close_old_connections, weak=False)


@worker_process_init.connect
def _tracing_in_worker_process(**kwargs):
    # After the fork: each pool process sets up its own tracer provider and batch thread.
    from apps.runs import tracing

    tracing.configure()


@worker_process_init.connect
def _knowledge_warm_up(**kwargs):
    # After the fork (threads do not survive one): each pool process loads the model and the
    # index in the background, so ranking a failure does not start with a load.
    from apps.knowledge.warmup import start_warm_up

    start_warm_up()


@worker_process_shutdown.connect
def _flush_traces(**kwargs):
    from apps.runs import tracing

    tracing.shutdown()
