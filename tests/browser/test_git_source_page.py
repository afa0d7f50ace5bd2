"""The Git source page in Chromium: the last sync with a refused file, the dry run's diff, and the
read-only editor of a synced workflow; light, dark and a 390 px phone. Screenshots in var/screenshots/."""

import pytest
from playwright.sync_api import expect

from apps.workflows import gitsync
from tests.browser.test_accessibility import PHONE
from tests.workflows.gitrepo import Repo, flow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def synced_source(tmp_path, settings, author, team):
    settings.FLOWDECK_GIT_LOCAL_ROOTS = [tmp_path]
    settings.FLOWDECK_GIT_ROOT = tmp_path / "checkouts"
    (tmp_path / "origin").mkdir()
    repo = Repo(tmp_path / "origin")
    repo.commit("Add the invoice flows", {"flows/invoices.yaml": flow("invoices"), "flows/ledger.yaml": flow("ledger")})
    source, _ = gitsync.create_source(author, team=team, url=str(repo.path), branch="main", folder="flows")
    gitsync.sync(source, actor=author, trigger="test")
    repo.commit("Reword invoices, break the ledger", {
        "flows/invoices.yaml": flow("invoices", "reworded"), "flows/ledger.yaml": flow("ledger", step_type="nope")})
    gitsync.sync(source, actor=author, trigger="test")
    repo.commit("Reword again", {"flows/invoices.yaml": flow("invoices", "reworded twice")})
    return source


def test_the_git_source_page_shows_refusals_and_the_dry_run_diff(open_page, live_server, author, synced_source,
                                                                 screenshot):
    url = f"{live_server.url}/workflows/git/{synced_source.pk}/"
    for scheme, viewport, name in (("light", None, "git-source-light"), ("dark", None, "git-source-dark"),
                                   ("light", PHONE, "git-source-390")):
        page = open_page(author, color_scheme=scheme, viewport=viewport)
        page.goto(url)
        expect(page.get_by_text("flows/ledger.yaml, line 5")).to_be_visible()
        page.get_by_role("button", name="Dry run").click()
        expect(page.get_by_role("heading", name="flows/invoices.yaml — would change invoices (now v2)")).to_be_visible()
        expect(page.locator("tr.diff-add").first).to_contain_text("reworded twice")
        if viewport:
            assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
        screenshot(page, name)
    page.goto(f"{live_server.url}/workflows/{synced_source.workflows.get(name='invoices').pk}/edit/")
    expect(page.locator("#git-banner")).to_contain_text("managed in Git")
    expect(page.get_by_role("button", name="Save version")).to_be_disabled()
    screenshot(page, "git-editor-banner-390")
