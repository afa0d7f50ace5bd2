"""Webhook channels that platform admins configure."""

from django.db import models
from django.utils import timezone


class NotificationChannel(models.Model):
    """A webhook (Slack-compatible JSON, HMAC-signed) that notifications are posted to."""

    name = models.CharField(max_length=100, unique=True)
    url = models.URLField(max_length=500)
    secret_encrypted = models.TextField(help_text="The HMAC secret, encrypted at rest.")
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.CASCADE,
                             related_name="notification_channels", help_text="Empty: every team.")
    event_kinds = models.JSONField(default=list, blank=True, help_text="Event kinds to send; empty: all.")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def wants(self, event_kind: str, team_id: int | None) -> bool:
        kind_ok = not self.event_kinds or event_kind in self.event_kinds
        return self.enabled and kind_ok and (self.team_id is None or self.team_id == team_id)
