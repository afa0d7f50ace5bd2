"""What the built-in step types share: connection lookup, JSON-able values."""

import datetime
import decimal
import uuid
from typing import Any

from apps.accounts.models import Team
from apps.catalog.models import Connection
from apps.catalog.registry import PermanentStepError, Reason, StepContext
from apps.catalog.secrets import SecretUnreadable


def connection_named(ctx: StepContext, name: str, kind: str) -> tuple[Connection, str]:
    """The connection `name` of `kind` that the step's team may use, and its secret, or a
    permanent error saying what to ask for. Unknown and not-shared read alike, so a step cannot
    learn which names other teams' connections have."""
    team = Team.objects.filter(runs__pk=ctx.run_id).first()
    connection = Connection.objects.usable_by(team).filter(name=name).first()
    if connection is None:
        team_name = f"team {team.name}" if team else "this run's team"
        raise PermanentStepError(f"There is no connection named {name!r} that {team_name} may use: ask a platform "
                                 f"admin to add it or share it with {team_name} under Step types → Connections, "
                                 f"or fix the name.", reason=Reason.CONNECTION_MISSING, connection=name)
    if connection.kind != kind:
        raise PermanentStepError(f"Connection {name!r} is a {connection.kind} connection; this step needs a "
                                 f"{kind} one.")
    try:
        return connection, connection.reveal_secret()
    except SecretUnreadable as exc:
        raise PermanentStepError(f"Connection {name!r}: {exc}", reason=Reason.SECRET_UNREADABLE,
                                 connection=name) from None


def jsonable(value: Any) -> Any:
    """Database values as JSON: numbers stay numbers, dates become ISO text, bytes hex."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return str(value)
