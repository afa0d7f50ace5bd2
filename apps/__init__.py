"""Flowdeck: the Django project package. Importing it makes the Celery app available."""

from apps.celery import app as celery_app

__all__ = ["celery_app"]
