"""System checks for the catalog's configuration.

flowdeck.E001: FLOWDECK_SECRETS_KEY cannot be read as Fernet keys.
flowdeck.W001 (`manage.py check --deploy`): the key does not come from the environment, so it
lives only in var/: losing it makes every connection secret unreadable. A deployment check, so
the embedded default's everyday commands stay quiet.
flowdeck.W002: connections still shared with all teams only because they predate team
ownership (migration 0002): every team's steps can use them until a platform admin scopes them.
flowdeck.W003: an installed step type package could not be loaded (its import failed, a schema is
not valid JSON Schema, a name is taken): none of its types are available, every other type is. A
warning, not an error, because an error would stop `migrate` and `runserver`, and one broken
package must not stop the console; `manage.py check --fail-level WARNING` makes it fail CI.
"""

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError

from apps.env import env_str


@checks.register(checks.Tags.security)
def secrets_key_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    from apps.catalog import secrets

    if settings.FLOWDECK_SECRETS_KEY:
        try:
            secrets.build_fernet(settings.FLOWDECK_SECRETS_KEY, settings.SECRET_KEY)
        except ImproperlyConfigured as exc:
            return [checks.Error(str(exc), id="flowdeck.E001")]
    return []


@checks.register(checks.Tags.security, deploy=True)
def secrets_key_source_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    if settings.DEBUG or env_str("FLOWDECK_SECRETS_KEY"):
        return []
    source = ("a key generated into var/secrets_key" if settings.FLOWDECK_SECRETS_KEY
              else "a key derived from SECRET_KEY")
    return [checks.Warning(
        f"FLOWDECK_SECRETS_KEY is not set in the environment: connection secrets are encrypted with {source}; "
        "if it is lost or changed, every connection secret has to be entered again.",
        hint="Set FLOWDECK_SECRETS_KEY from your secret store to a Fernet key (Fernet.generate_key()); "
             "while rotating, list the new key first and the old one after it, separated by a comma.",
        id="flowdeck.W001",
    )]


@checks.register(checks.Tags.security, checks.Tags.database)
def unscoped_connections_check(app_configs=None, databases=None, **kwargs) -> list[checks.CheckMessage]:
    from apps.catalog.models import Connection

    # A database check runs only when asked for one (`migrate`, `check --database default`), as
    # Django expects; before the first `migrate` there is no table yet, and nothing to say.
    if not databases or "default" not in databases:
        return []
    try:
        names = list(Connection.objects.filter(shared_with_all=True, scoped_at__isnull=True)
                     .values_list("name", flat=True)[:11])
    except DatabaseError:
        return []
    if not names:
        return []
    listed = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
    return [checks.Warning(
        f"Connections shared with all teams because they predate team ownership: {listed}. "
        "Any team's workflow can use them by name.",
        hint="A platform admin opens each under Step types → Connections and chooses the team that owns it "
             "or the teams to share it with (or confirms all teams), or PATCHes /api/v1/connections/<name> "
             "with team, shared_with or shared_with_all.",
        id="flowdeck.W002",
    )]


@checks.register()
def step_type_packages_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    from apps.catalog.registry import ENTRY_POINT_GROUP, package_problems

    return [checks.Warning(
        f"Step type package {problem.package} was not loaded: {problem.reason}. None of its step types are "
        "available; every other step type is.",
        hint=f"Fix the package (its entry point in group {ENTRY_POINT_GROUP}: {problem.entry_point}) or uninstall "
             "it, then restart the web and worker processes.",
        obj=problem.package, id="flowdeck.W003",
    ) for problem in package_problems()]
