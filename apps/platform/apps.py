"""The platform app: admin pages and console-wide pages; it owns the liveness records of workers and beat."""

from django.apps import AppConfig


class PlatformConfig(AppConfig):
    name = "apps.platform"
    label = "platform"
