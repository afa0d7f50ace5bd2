"""An operator opens a failed run whose step names a connection nobody added: the checkpoint
shows the known cause and its fix link first, before anything the assistant guesses."""

import pytest
from playwright.sync_api import expect

from apps.knowledge.runbooks import sync_runbooks
from apps.runs import engine
from tests.runs.factories import make_version, step

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_operator_sees_the_missing_connection_and_its_fix_first(open_page, screenshot, live_server, team,
                                                                     operator, drive):
    sync_runbooks()
    version = make_version(team, [step("load", "sql.query", params={"connection": "warehouse", "sql": "SELECT 1"},
                                       on_failure="pause")], name="nightly-etl")
    run = drive(engine.start_run(operator, version))

    page = open_page(operator)
    page.goto(f"{live_server.url}/runs/{run.pk}/")
    page.get_by_role("link", name="decide at checkpoint").click()
    assistant = page.locator("section.suggestions")
    expect(assistant.get_by_role("heading", name="Known cause")).to_be_visible()
    fix = assistant.get_by_role("link", name="Add connection “warehouse”")
    expect(fix).to_have_attribute("href", "/catalog/connections/new/?name=warehouse")
    expect(assistant.get_by_role("link", name="Runbook: Failures Flowdeck names itself › Missing connection")) \
        .to_be_visible()
    # First: nothing in the assistant's section comes before the known cause.
    assert assistant.locator("h2").first.inner_text() == "Known cause"
    assert assistant.locator("a").first.inner_text() == "Add connection “warehouse”"
    screenshot(page, "known-cause-checkpoint")
