"""Platform-managed resources that step types use: connections (with encrypted secrets) and
the allow-list of hosts that `http.request` may call.

Only `apps.catalog.services` writes these rows. A connection's secret is stored encrypted
(`apps.catalog.secrets`) and is read back only by step code at run time, via `reveal_secret()`.
A connection is usable by its owning team, by the teams a platform admin shared it with, or by
every team (`shared_with_all`); `Connection.objects.usable_by(team)` is the one place that rule lives.
"""

from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from apps.catalog import secrets


class ConnectionKind(models.TextChoices):
    SQL = "sql", "SQL database"
    HTTP = "http", "HTTP API"
    RABBITMQ = "rabbitmq", "RabbitMQ"
    REDIS = "redis", "Redis"


URL_SCHEMES = {
    ConnectionKind.SQL: ("sqlite", "postgres", "postgresql"),
    ConnectionKind.HTTP: ("http", "https"),
    ConnectionKind.RABBITMQ: ("amqp", "amqps"),
    ConnectionKind.REDIS: ("redis", "rediss"),
}


class ConnectionQuerySet(models.QuerySet):
    def usable_by(self, *teams) -> "ConnectionQuerySet":
        """The connections that steps of any of `teams` (Teams or ids) may use; with none, only those
        shared with all teams (a missing team never matches the connections that no team owns)."""
        team_ids = [getattr(team, "pk", team) for team in teams if team is not None]
        shared = Connection.shared_with.through.objects.filter(connection=OuterRef("pk"), team_id__in=team_ids)
        return self.filter(Q(shared_with_all=True) | Q(team_id__in=team_ids) | Exists(shared))


class Connection(models.Model):
    # Names stay unique across teams: a step names a connection, and a name must never mean two things.
    name = models.SlugField(unique=True, help_text="How steps refer to it, for example sales-db.")
    kind = models.CharField(max_length=16, choices=ConnectionKind.choices)
    url = models.CharField(
        max_length=500,
        help_text="Everything but the secret, for example postgres://app@db:5432/sales or sqlite:////data/sales.db.",
    )
    encrypted_secret = models.TextField(blank=True, editable=False)
    allow_writes = models.BooleanField(default=False, help_text="Lets sql.execute change data through it.")
    description = models.TextField(blank=True)
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.PROTECT,
                             related_name="connections",
                             help_text="The team that owns it; empty for a platform connection shared below.")
    shared_with = models.ManyToManyField("accounts.Team", blank=True, related_name="shared_connections",
                                         help_text="Other teams whose steps may use it.")
    shared_with_all = models.BooleanField(default=False, help_text="Every team's steps may use it.")
    # When a platform admin last decided who may use it; empty for connections from before teams
    # owned them (migrated as shared with all teams), which the flowdeck.W002 check reports.
    scoped_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = ConnectionQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    def __repr__(self) -> str:
        return f"<Connection {self.name} kind={self.kind}>"

    def clean(self) -> None:
        parts = urlsplit(self.url)
        schemes = URL_SCHEMES.get(self.kind, ())
        if parts.scheme not in schemes:
            raise ValidationError({"url": f"A {self.kind} connection URL starts with "
                                          f"{' or '.join(s + '://' for s in schemes)}."})
        if parts.password:
            raise ValidationError({"url": "Remove the password from the URL and put it in the secret field: "
                                          "URLs are shown on pages, secrets never are."})

    @property
    def has_secret(self) -> bool:
        return bool(self.encrypted_secret)

    def set_secret(self, plain: str) -> None:
        """Store `plain` encrypted; an empty value removes the secret."""
        self.encrypted_secret = secrets.encrypt(plain) if plain else ""

    def reveal_secret(self) -> str:
        return secrets.decrypt(self.encrypted_secret) if self.encrypted_secret else ""

    def sharing(self) -> dict:
        """Who may use it, as the audit log and the API show it (team slugs)."""
        return {"team": self.team.slug if self.team_id else None,
                "shared_with": sorted(team.slug for team in self.shared_with.all()),
                "shared_with_all": self.shared_with_all}


class AllowedHost(models.Model):
    """A host `http.request` may call: `api.example.com` exactly, or `*.example.com` for its subdomains."""

    pattern = models.CharField(max_length=253, unique=True)
    allow_private = models.BooleanField(
        default=False,
        help_text="Also allow private, loopback and link-local addresses (internal services). "
                  "Off, such addresses are refused even when the name matches.",
    )
    note = models.CharField(max_length=200, blank=True, help_text="Who needs it and why.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["pattern"]

    def __str__(self) -> str:
        return self.pattern

    def clean(self) -> None:
        self.pattern = self.pattern.strip().lower().rstrip(".")
        bare = self.pattern.removeprefix("*.")
        if not bare or any(char in bare for char in "*/:@ "):
            raise ValidationError({"pattern": "Give a host name such as api.example.com or *.example.com "
                                              "(no scheme, port or path)."})

    def matches(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        if self.pattern.startswith("*."):
            return host.endswith(self.pattern[1:])
        return host == self.pattern
