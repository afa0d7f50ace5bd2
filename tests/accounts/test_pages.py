"""Sign-in and the pages every person sees."""

from django.urls import reverse

from tests.conftest import PASSWORD


def test_login_page_renders_and_signs_in(client, author):
    page = client.get(reverse("accounts:login"))
    assert page.status_code == 200
    assert "Sign in to Flowdeck" in page.content.decode()
    response = client.post(reverse("accounts:login"), {"username": author.username, "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == reverse("home")


def test_wrong_password_says_what_to_do(client, author):
    response = client.post(reverse("accounts:login"), {"username": author.username, "password": "nope"})
    assert response.status_code == 200
    assert "do not match" in response.content.decode()


def test_pages_need_a_signed_in_person(client, db):
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert reverse("accounts:login") in response["Location"]


def test_home_lists_the_persons_roles(author, client_for):
    body = client_for(author).get(reverse("home")).content.decode()
    assert "Billing" in body and "Author" in body


def test_logout_signs_out(author, client_for):
    client = client_for(author)
    assert client.post(reverse("accounts:logout")).status_code == 302
    assert client.get(reverse("home")).status_code == 302


def test_api_docs_and_schema_are_served_without_a_cdn(author, client_for):
    client = client_for(author)
    docs = client.get(reverse("api-docs")).content.decode()
    assert "cdn" not in docs.lower() and "swagger" in docs.lower()
    schema = client.get(reverse("api-schema"))
    assert schema.status_code == 200
    assert b"/api/v1/me" in schema.content


def test_home_lists_unfinished_runs_whose_sla_is_at_risk(team, operator, client_for):
    from datetime import timedelta

    from django.utils import timezone

    from apps.monitoring.models import SlaState, SlaStatus
    from apps.runs import engine, testing_steps  # noqa: F401  (registers the test.* step types)
    from apps.runs.models import Run, RunState
    from tests.runs.factories import make_version, step

    late, done = (engine.start_run(operator, make_version(team, [step("only")], name=name))
                  for name in ("late-close", "done-close"))
    Run.objects.filter(pk=done.pk).update(state=RunState.SUCCEEDED)
    soon = timezone.now() + timedelta(minutes=20)
    for run in (late, done):
        SlaStatus.objects.create(run=run, team=team, state=SlaState.AT_RISK, deadline=soon)
    attention = client_for(operator).get(reverse("home")).text.split('id="attention-h"')[1].split("</section>")[0]
    assert f"#{late.pk} late-close" in attention and "SLA at risk" in attention
    assert "done-close" not in attention
