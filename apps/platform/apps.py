"""The platform app: admin pages and console-wide pages; it owns no models."""

from django.apps import AppConfig


class PlatformConfig(AppConfig):
    name = "apps.platform"
    label = "platform"
