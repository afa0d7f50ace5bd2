"""System checks for sign-in.

accounts.E001: the single sign-on group map cannot be read (the message names the group and why).
accounts.E002: single sign-on is configured without a client id or secret.
accounts.E003: local passwords are off and single sign-on is not configured: nobody can sign in.
accounts.W001 (with a database): the group map names teams or approver groups that do not exist;
sign-in skips them, so the people of those groups get less than the map says.
"""

from django.conf import settings
from django.core import checks
from django.db import DatabaseError

from apps.accounts import group_map


@checks.register(checks.Tags.security)
def sign_in_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    errors = []
    try:
        group_map.parse(settings.FLOWDECK_OIDC_GROUP_MAP)
    except group_map.GroupMapError as exc:
        errors.append(checks.Error(str(exc), hint="Fix the map: see the README, section 'Single sign-on'.",
                                   id="accounts.E001"))
    if settings.FLOWDECK_OIDC_ISSUER and not (settings.OIDC_RP_CLIENT_ID and settings.OIDC_RP_CLIENT_SECRET):
        errors.append(checks.Error(
            "FLOWDECK_OIDC_ISSUER is set but FLOWDECK_OIDC_CLIENT_ID or FLOWDECK_OIDC_CLIENT_SECRET is empty.",
            hint="Register Flowdeck as a client at the provider (redirect URI <site>/accounts/sso/callback/) "
                 "and set both.", id="accounts.E002"))
    if not settings.FLOWDECK_LOCAL_LOGIN and not settings.FLOWDECK_OIDC_ISSUER:
        errors.append(checks.Error(
            "FLOWDECK_LOCAL_LOGIN is off and FLOWDECK_OIDC_ISSUER is empty: nobody could sign in.",
            hint="Configure single sign-on, or leave local passwords on.", id="accounts.E003"))
    return errors


@checks.register(checks.Tags.security, checks.Tags.database)
def group_map_names_check(app_configs=None, databases=None, **kwargs) -> list[checks.CheckMessage]:
    from apps.accounts.models import ApproverGroup, Team

    if not databases or "default" not in databases:
        return []
    try:
        access = group_map.parse(settings.FLOWDECK_OIDC_GROUP_MAP).values()
    except group_map.GroupMapError:
        return []  # accounts.E001 says why
    teams = {slug for grants in access for slug, _ in grants.roles}
    approver_groups = {slug for grants in access for slug in grants.approver_groups}
    try:
        missing_teams = teams - set(Team.objects.filter(slug__in=teams).values_list("slug", flat=True))
        missing_groups = approver_groups - set(ApproverGroup.objects.filter(slug__in=approver_groups)
                                               .values_list("slug", flat=True))
    except DatabaseError:
        return []  # before the first migrate
    missing = [f"team {slug!r}" for slug in sorted(missing_teams)]
    missing += [f"approver group {slug!r}" for slug in sorted(missing_groups)]
    if not missing:
        return []
    return [checks.Warning(
        f"FLOWDECK_OIDC_GROUP_MAP names {', '.join(missing)}, which do not exist: sign-in skips them.",
        hint="Create them, or correct the slugs in the map.", id="accounts.W001")]
