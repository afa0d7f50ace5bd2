"""The editor keeps up, and the console fits a phone: in Chromium, a schema error is listed
without waiting for the server while the last good graph stays, greyed; every main page at
390x844 is no wider than the screen and logs no console error; the navigation folds behind a
menu button. Screenshots land in var/screenshots/."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.test_accessibility import ADMIN_PAGES, APPROVER_PAGES, PHONE, console_data  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _console_errors(page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def test_a_schema_error_shows_at_once_and_the_last_graph_stays_greyed(open_page, live_server, author, screenshot):
    page = open_page(author)
    errors = _console_errors(page)
    page.goto(f"{live_server.url}/workflows/new/")
    expect(page.locator("#editor-preview svg")).to_be_visible()
    assert not errors, errors  # the aborted requests below log errors on purpose
    # From here the server's checks never answer: what appears comes from the browser alone.
    page.route(re.compile(r"/workflows/(validate|editor/preview)/"), lambda route: route.abort())
    page.locator(".CodeMirror").click()
    page.keyboard.press("Control+End")
    page.keyboard.insert_text("    retries: many\n")
    problem = page.locator("#spec-errors[data-source='browser'] li[data-line]")
    expect(problem).to_contain_text("steps.0.retries")
    expect(problem).to_contain_text("must be integer or object")
    expect(page.locator("#editor-preview.stale svg")).to_be_visible()
    expect(page.locator("#editor-preview .stale-note")).to_be_visible()
    page.set_viewport_size({"width": 1280, "height": 900})
    screenshot(page, "editor-schema-error-1280")
    problem.get_by_role("button", name=re.compile("Line 12, column 14")).click()
    expect(page.locator(".CodeMirror-focused")).to_be_visible()


def test_main_pages_fit_a_phone_and_log_no_console_errors(open_page, live_server, console_data, platform_admin,
                                                         approver, screenshot):
    too_wide, logged = {}, {}
    for user, paths in ((platform_admin, ADMIN_PAGES), (approver, APPROVER_PAGES)):
        page = open_page(user, viewport=PHONE)
        errors = _console_errors(page)
        # Every page the navigation links to is a main page, besides the detail pages listed.
        nav = page.eval_on_selector_all("#main-nav a", "links => links.map(a => new URL(a.href).pathname)")
        for path in dict.fromkeys([*paths, *nav]):
            errors.clear()
            page.goto(live_server.url + path.format(**console_data))
            page.wait_for_load_state("networkidle")
            width = page.evaluate("document.scrollingElement.scrollWidth")
            if width > PHONE["width"]:
                too_wide[path] = width
            if errors:
                logged[path] = list(errors)
    assert not too_wide, f"wider than {PHONE['width']} px: {too_wide}"
    assert not logged, logged


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_phone_navigation_folds_behind_a_menu_button(open_page, live_server, console_data, approver, scheme,
                                                     screenshot):
    page = open_page(approver, color_scheme=scheme, viewport=PHONE)
    page.goto(f"{live_server.url}/approvals/")
    menu = page.get_by_role("button", name="Menu")
    expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
    screenshot(page, f"phone-inbox-{scheme}")
    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Runs")).to_be_visible()
    screenshot(page, f"phone-nav-open-{scheme}")
    page.keyboard.press("Escape")
    expect(page.get_by_role("navigation", name="Main")).to_be_hidden()


def test_the_editor_stacks_its_problems_and_graph_under_the_yaml_on_a_phone(open_page, live_server, author,
                                                                            screenshot):
    page = open_page(author, viewport=PHONE)
    page.goto(f"{live_server.url}/workflows/new/")
    expect(page.locator("#editor-preview svg")).to_be_visible()
    editor, side = page.locator(".CodeMirror").bounding_box(), page.locator(".editor-side").bounding_box()
    assert side["y"] >= editor["y"] + editor["height"], (editor, side)  # below the YAML, not squeezed beside it
    assert side["width"] > PHONE["width"] * 0.8
    screenshot(page, "editor-390")
