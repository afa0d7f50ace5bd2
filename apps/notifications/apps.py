"""The notifications app: email to people and signed webhooks to channels, sent after commit.
Approvals (requests, decisions, expiry) and monitoring (alerts) decide what to say; this app
owns the channels and the delivery."""

from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "apps.notifications"
    label = "notifications"
    verbose_name = "Notifications"
