"""Domain functions of the catalog app: the only code that writes connections and allowed hosts.

Only platform admins may call them. Every change writes an audit event; a secret never enters
the audit data: replacing or clearing it is its own event, without the value. Who may use a
connection (its owning team, teams it is shared with, or all teams) is set when it is created
and changed by `update_connection`, each change audited as `connection.sharing_changed`; the
page, the API and the Django admin all change a connection through that one function.
"""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from apps.accounts.access import require_platform_admin, visible_team_ids, visible_teams
from apps.accounts.models import Team
from apps.audit.log import record
from apps.catalog.models import AllowedHost, Connection
from apps.logging import get_logger

logger = get_logger(__name__)

CONNECTION_FIELDS = ("name", "kind", "url", "allow_writes", "description")
SHARING_FIELDS = ("team", "shared_with", "shared_with_all")  # audited apart from the other fields


class CatalogError(Exception):
    """A change to connections or allowed hosts that is not valid; the message says how to fix it."""

    def __init__(self, message: str, field_errors: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.field_errors = field_errors or {}


def connections_for(user, team_slug: str = "") -> QuerySet:
    """The connections `user` may see: those their teams' steps may use (every one for a platform
    admin); with `team_slug`, only those that team's steps may use. Http404 for a team `user`
    cannot see, worded like one that does not exist."""
    connections = Connection.objects.select_related("team").prefetch_related("shared_with")
    if team_slug:
        team = visible_teams(user).filter(slug=team_slug).first()
        if team is None:
            raise Http404(f"You are in no team {team_slug!r}.")
        return connections.usable_by(team)
    team_ids = visible_team_ids(user)
    return connections if team_ids is None else connections.usable_by(*team_ids)


def _validated(obj) -> None:
    try:
        obj.full_clean()
    except ValidationError as exc:
        errors = exc.message_dict
        summary = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in errors.items())
        raise CatalogError(summary, errors) from None


def _public_fields(connection: Connection) -> dict:
    return {field: getattr(connection, field) for field in CONNECTION_FIELDS}


def _record_secret_change(actor, connection: Connection, secret: str) -> None:
    # The action says what happened; the value never leaves the encrypted column.
    record(actor, "connection.secret_replaced" if secret else "connection.secret_cleared", connection)


def _check_sharing(team, shared_with, shared_with_all: bool) -> None:
    if team is None and not shared_with and not shared_with_all:
        message = ("Say who may use it: the team that owns it, the teams to share it with, or all teams "
                   "(a connection no team may use would only make steps fail).")
        raise CatalogError(message, {"team": [message]})


def _apply_sharing(connection: Connection, team, shared_with, shared_with_all: bool) -> None:
    connection.team = team
    connection.shared_with_all = shared_with_all
    connection.scoped_at = timezone.now()
    connection.save(update_fields=["team", "shared_with_all", "scoped_at"])
    connection.shared_with.set([other for other in shared_with if other != team])


@transaction.atomic
def create_connection(actor, *, name: str, kind: str, url: str, secret: str = "", allow_writes: bool = False,
                      description: str = "", team: Team | None = None, shared_with=(),
                      shared_with_all: bool = False) -> Connection:
    """Add a connection that `team` owns and/or that is shared with `shared_with` or all teams."""
    require_platform_admin(actor)
    connection = Connection(name=name, kind=kind, url=url, allow_writes=allow_writes, description=description)
    _validated(connection)
    _check_sharing(team, shared_with, shared_with_all)
    connection.set_secret(secret)
    connection.save()
    _apply_sharing(connection, team, shared_with, shared_with_all)
    record(actor, "connection.created", connection, after={**_public_fields(connection), **connection.sharing()})
    if secret:
        _record_secret_change(actor, connection, secret)
    logger.info("connection created", connection=connection.name, kind=connection.kind)
    return connection


@transaction.atomic
def update_connection(actor, connection_id: int, *, secret: str | None = None, **changes) -> Connection:
    """Change the given fields of a connection, who may use it among them (`team`, `shared_with`,
    `shared_with_all`; those not given stay). `secret=None` keeps the secret, `""` clears it,
    text replaces it. Each kind of change is audited once, and only when something changed, except
    that saying who may use a connection that predates team ownership counts even unchanged: it
    marks the connection as decided, which ends the flowdeck.W002 warning."""
    require_platform_admin(actor)
    unknown = set(changes) - set(CONNECTION_FIELDS) - set(SHARING_FIELDS)
    if unknown:
        raise CatalogError(f"Cannot change {', '.join(sorted(unknown))} of a connection.")
    connection = Connection.objects.select_for_update().get(pk=connection_id)
    current_sharing = {"team": connection.team, "shared_with": list(connection.shared_with.all()),
                       "shared_with_all": connection.shared_with_all}
    sharing = {**current_sharing, **{field: changes.pop(field) for field in SHARING_FIELDS if field in changes}}
    _check_sharing(**sharing)
    before = _public_fields(connection)
    for field, value in changes.items():
        setattr(connection, field, value)
    _validated(connection)
    if secret is not None:
        connection.set_secret(secret)
    after = _public_fields(connection)
    if after != before or secret is not None or _who(sharing) != _who(current_sharing):
        # Only a real change moves it: the investigation of a failure reads it as "changed since".
        connection.updated_at = timezone.now()
    connection.save()
    if after != before:
        record(actor, "connection.updated", connection,
               before={k: v for k, v in before.items() if after[k] != v},
               after={k: v for k, v in after.items() if before[k] != v})
    if secret is not None:
        _record_secret_change(actor, connection, secret)
    if _who(sharing) != _who(current_sharing) or connection.scoped_at is None:
        before_sharing = connection.sharing()
        _apply_sharing(connection, **sharing)
        record(actor, "connection.sharing_changed", connection, before=before_sharing, after=connection.sharing())
    logger.info("connection updated", connection=connection.name)
    return connection


def _who(sharing: dict) -> tuple:
    # As _apply_sharing stores it: the owning team is never also in shared_with.
    team = sharing["team"]
    return (team.pk if team else None, {other.pk for other in sharing["shared_with"] if other != team},
            sharing["shared_with_all"])


@transaction.atomic
def delete_connection(actor, connection_id: int) -> None:
    require_platform_admin(actor)
    connection = Connection.objects.select_for_update().get(pk=connection_id)
    record(actor, "connection.deleted", connection, before=_public_fields(connection))
    connection.delete()
    logger.info("connection deleted", connection=connection.name)


@transaction.atomic
def add_allowed_host(actor, *, pattern: str, allow_private: bool = False, note: str = "") -> AllowedHost:
    require_platform_admin(actor)
    host = AllowedHost(pattern=pattern, allow_private=allow_private, note=note)
    _validated(host)
    host.save()
    record(actor, "allowed_host.added", host,
           after={"pattern": host.pattern, "allow_private": allow_private, "note": note})
    return host


@transaction.atomic
def remove_allowed_host(actor, host_id: int) -> None:
    require_platform_admin(actor)
    host = AllowedHost.objects.select_for_update().get(pk=host_id)
    record(actor, "allowed_host.removed", host, before={"pattern": host.pattern, "allow_private": host.allow_private})
    host.delete()
