"""People and teams. A person holds roles in teams; scoping everywhere starts here."""

import hashlib
import secrets

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone


class User(AbstractUser):
    # Platform admins keep the platform healthy: workers, step types, connections, teams, index.
    is_platform_admin = models.BooleanField(default=False)

    @property
    def display_name(self) -> str:
        return self.get_full_name() or self.username


class Team(models.Model):
    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    AUTHOR = "author", "Author"
    APPROVER = "approver", "Approver"
    OPERATOR = "operator", "Operator"
    VIEWER = "viewer", "Viewer"


class Membership(models.Model):
    """One role of one person in one team; a person may hold several roles in a team."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "team", "role"], name="unique_role_in_team")]
        ordering = ["team__name", "user__username", "role"]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} in {self.team}"


class ApproverGroup(models.Model):
    """A named set of people who can decide approval requests (referenced by `approval.group`)."""

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=120)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="approver_groups")
    members = models.ManyToManyField(User, related_name="approver_groups", blank=True)
    # Separation of duties is the rule; a platform admin may relax it for a group (audited).
    allow_self_approval = models.BooleanField(default=False)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class ApiToken(models.Model):
    """A bearer token for the API. Only a hash is stored; the token is shown once at creation."""

    PREFIX_LENGTH = 8

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=120)
    prefix = models.CharField(max_length=PREFIX_LENGTH, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @staticmethod
    def hash_key(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    @staticmethod
    def new_key() -> str:
        return "fd_" + secrets.token_urlsafe(32)


class SsoIdentity(models.Model):
    """A person's account at the single sign-on provider, and what the group map granted them.

    `mapped_roles` ([team id, role] pairs) and `mapped_approver_groups` (group ids) hold only
    what the map itself created, so a later sign-in removes exactly those once the person's
    groups stop granting them; roles and groups given by hand are never listed here."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="sso_identities")
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    groups = models.JSONField(default=list, blank=True)  # the provider's groups at the last sign-in
    mapped_roles = models.JSONField(default=list, blank=True)
    mapped_approver_groups = models.JSONField(default=list, blank=True)
    last_sign_in_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="unique_sso_subject")]
        verbose_name = "single sign-on identity"
        verbose_name_plural = "single sign-on identities"

    def __str__(self) -> str:
        return f"{self.user} at {self.issuer}"
