"""The single sign-on group map: which team roles and approver groups each provider group grants.

FLOWDECK_OIDC_GROUP_MAP holds the map as JSON, or the path of a .json, .yaml/.yml or .toml file:

    {"payments-devs": {"teams": {"payments": ["author", "operator"]},
                       "approver_groups": ["payments-leads"]}}

A person gets the union of what their groups grant; groups the map does not name grant nothing.
"""

import json
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml
from django.conf import settings

from apps.accounts.models import Role

_KEYS = {"teams", "approver_groups"}


class GroupMapError(ValueError):
    """The group map cannot be read; the message names the variable, the group and the problem."""


@dataclass(frozen=True)
class Access:
    roles: frozenset[tuple[str, str]] = frozenset()  # (team slug, role)
    approver_groups: frozenset[str] = frozenset()  # approver group slugs


def parse(raw: str) -> dict[str, Access]:
    """The map in `raw` (JSON text or a file path), by provider group; raises GroupMapError."""
    raw = raw.strip()
    if not raw:
        return {}
    document = _load_json(raw, "FLOWDECK_OIDC_GROUP_MAP") if raw.startswith("{") else _load_file(Path(raw))
    if not isinstance(document, dict):
        raise GroupMapError("FLOWDECK_OIDC_GROUP_MAP must be an object of provider group names.")
    return {str(group): _access(str(group), grants) for group, grants in document.items()}


def access_for(group_map: dict[str, Access], groups) -> Access:
    granted = [group_map[group] for group in groups if group in group_map]
    return Access(roles=frozenset().union(*(a.roles for a in granted)),
                  approver_groups=frozenset().union(*(a.approver_groups for a in granted)))


@lru_cache(maxsize=4)
def _parse_cached(raw: str) -> dict[str, Access]:
    return parse(raw)


def configured() -> dict[str, Access]:
    """The map of FLOWDECK_OIDC_GROUP_MAP (read once per value)."""
    return _parse_cached(settings.FLOWDECK_OIDC_GROUP_MAP)


def _load_json(text: str, where: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise GroupMapError(f"{where} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.") \
            from None


def _load_file(path: Path):
    where = f"FLOWDECK_OIDC_GROUP_MAP file {path}"
    try:
        text = path.read_text()
    except OSError as exc:
        raise GroupMapError(f"{where} cannot be read ({exc.strerror}); give JSON or a readable file.") from None
    if path.suffix == ".json":
        return _load_json(text, where)
    if path.suffix in (".yaml", ".yml"):
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise GroupMapError(f"{where} is not valid YAML: {exc}") from None
    if path.suffix == ".toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise GroupMapError(f"{where} is not valid TOML: {exc}") from None
    raise GroupMapError(f"{where} must end in .json, .yaml, .yml or .toml.")


def _access(group: str, grants) -> Access:
    where = f"FLOWDECK_OIDC_GROUP_MAP group {group!r}"
    if not isinstance(grants, dict) or not grants.keys() <= _KEYS:
        raise GroupMapError(f"{where} must be an object with 'teams' and/or 'approver_groups'.")
    teams = grants.get("teams", {})
    if not isinstance(teams, dict):
        raise GroupMapError(f"{where}: 'teams' must map team slugs to lists of roles.")
    roles = set()
    for team, team_roles in teams.items():
        if not isinstance(team_roles, list):
            raise GroupMapError(f"{where}: team {team!r} must have a list of roles, for example [\"author\"].")
        for role in team_roles:
            if role not in Role.values:
                raise GroupMapError(f"{where}: team {team!r} has role {role!r}, which is not one of "
                                    f"{', '.join(Role.values)}.")
            roles.add((str(team), role))
    approver_groups = grants.get("approver_groups", [])
    if not isinstance(approver_groups, list) or not all(isinstance(slug, str) for slug in approver_groups):
        raise GroupMapError(f"{where}: 'approver_groups' must be a list of approver group slugs.")
    return Access(roles=frozenset(roles), approver_groups=frozenset(approver_groups))
