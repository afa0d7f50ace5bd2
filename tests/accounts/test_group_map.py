"""The single sign-on group map: read from JSON or a file, unknown groups grant nothing, and a
map that cannot be read stops start-up with a system check that names the problem."""

import pytest
from django.core.management import CommandError, call_command

from apps.accounts.group_map import Access, GroupMapError, access_for, parse

MAP = {"payments-devs": {"teams": {"payments": ["author", "operator"]}},
       "payments-leads": {"teams": {"payments": ["approver"]}, "approver_groups": ["payments-approvers"]}}


def test_a_person_gets_the_union_of_what_their_mapped_groups_grant_and_unknown_groups_nothing():
    import json

    group_map = parse(json.dumps(MAP))
    access = access_for(group_map, ["payments-devs", "payments-leads", "everyone", "vpn-users"])
    assert access == Access(roles=frozenset({("payments", "author"), ("payments", "operator"),
                                             ("payments", "approver")}),
                            approver_groups=frozenset({"payments-approvers"}))
    assert access_for(group_map, ["everyone"]) == Access()


def test_the_map_can_live_in_a_yaml_or_toml_file(tmp_path):
    yaml_file = tmp_path / "groups.yaml"
    yaml_file.write_text("payments-devs:\n  teams:\n    payments: [author, operator]\n")
    toml_file = tmp_path / "groups.toml"
    toml_file.write_text('[payments-devs.teams]\npayments = ["author", "operator"]\n')
    expected = {"payments-devs": Access(roles=frozenset({("payments", "author"), ("payments", "operator")}))}
    assert parse(str(yaml_file)) == parse(str(toml_file)) == expected


@pytest.mark.parametrize(("raw", "problem"), [
    ('{"devs": {"teams": {"payments": ["admin"]}}}',
     "group 'devs': team 'payments' has role 'admin', which is not one of author, approver, operator, viewer"),
    ('{"devs": {"teams": {"payments": "author"}}}', "group 'devs': team 'payments' must have a list of roles"),
    ('{"devs": {"team": {"payments": ["author"]}}}', "group 'devs' must be an object with 'teams'"),
    ('{"devs": {"approver_groups": "leads"}}', "group 'devs': 'approver_groups' must be a list"),
    ('{"devs": ', "FLOWDECK_OIDC_GROUP_MAP is not valid JSON"),
    ("/nowhere/groups.yaml", "FLOWDECK_OIDC_GROUP_MAP file /nowhere/groups.yaml cannot be read"),
])
def test_a_malformed_map_is_refused_at_start_up_naming_the_problem(settings, raw, problem):
    with pytest.raises(GroupMapError, match="FLOWDECK_OIDC_GROUP_MAP"):
        parse(raw)
    settings.FLOWDECK_OIDC_GROUP_MAP = raw
    with pytest.raises(CommandError) as refused:
        call_command("check")
    assert "accounts.E001" in str(refused.value)
    assert problem in str(refused.value)


def test_turning_off_passwords_without_single_sign_on_is_refused_at_start_up(settings):
    settings.FLOWDECK_LOCAL_LOGIN = False
    settings.FLOWDECK_OIDC_ISSUER = ""
    with pytest.raises(CommandError, match="accounts.E003"):
        call_command("check")


def test_a_map_naming_a_team_or_approver_group_that_does_not_exist_is_reported(settings, team):
    from apps.accounts.checks import group_map_names_check

    settings.FLOWDECK_OIDC_GROUP_MAP = '{"devs": {"teams": {"billing": ["author"], "payments": ["author"]}, ' \
                                       '"approver_groups": ["payments-leads"]}}'
    warnings = group_map_names_check(databases=["default"])
    assert [(message.id, message.msg) for message in warnings] == [("accounts.W001", (
        "FLOWDECK_OIDC_GROUP_MAP names team 'payments', approver group 'payments-leads', which do not exist: "
        "sign-in skips them."))]
