"""Installing the demo's stand-ins: the demo database and bank statements (rebuilt, dated from
today), the connections named in fixtures/demo.yaml and the allow-list entry for Flowdeck's own
demo services. Connections and hosts go through the catalog's services, audited like any other."""

import secrets
from datetime import date
from pathlib import Path

import httpx
from django.conf import settings

from apps.catalog import services as catalog
from apps.catalog.models import AllowedHost, Connection, ConnectionKind
from apps.platform.demo import business_data
from apps.platform.demo.services import CONNECTION_NAME

DEMO_DATABASE = "business.sqlite3"


def demo_database_path() -> Path:
    return Path(settings.VAR_DIR) / "demo" / DEMO_DATABASE


def install(entries: list[dict], teams: dict, admin, today: date | None = None) -> None:
    today = today or date.today()
    database = demo_database_path()
    business_data.build_database(database, today)
    business_data.write_bank_statements(Path(settings.FLOWDECK_DATA_ROOT) / "incoming" / "bank", today)
    urls = {ConnectionKind.SQL: f"sqlite:///{database.resolve()}", ConnectionKind.HTTP: settings.SITE_URL}
    for entry in entries:
        _connection(admin, entry, urls[entry["kind"]], teams)
    host = httpx.URL(settings.SITE_URL).host
    if not AllowedHost.objects.filter(pattern=host).exists():
        catalog.add_allowed_host(admin, pattern=host, allow_private=True,
                                 note="Demo: Flowdeck's own stand-in services under /demo/services/.")


def _connection(admin, entry: dict, url: str, teams: dict) -> None:
    existing = Connection.objects.filter(name=entry["name"]).first()
    if existing is not None:
        if existing.url != url:  # the site moved, or the var folder did
            catalog.update_connection(admin, existing.pk, url=url)
        return
    catalog.create_connection(
        admin, name=entry["name"], kind=entry["kind"], url=url, allow_writes=entry.get("allow_writes", False),
        description=entry.get("description", ""), team=teams.get(entry.get("team")),
        shared_with=[teams[slug] for slug in entry.get("shared_with", [])],
        shared_with_all=entry.get("shared_with_all", False),
        # Only callers holding this secret get answers from the demo services.
        secret=secrets.token_urlsafe(24) if entry["name"] == CONNECTION_NAME else "")
