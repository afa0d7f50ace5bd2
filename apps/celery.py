"""The Celery application. Workers and beat load Django settings (CELERY_* keys) from here."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apps.settings")

app = Celery("flowdeck")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
