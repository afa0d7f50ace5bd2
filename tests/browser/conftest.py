"""Browser tests: Debian's Chromium driven by Playwright against pytest-django's live server,
with a real Celery worker (tests/e2e) running the steps. Never downloads a browser.

CodeMirror and axe-core come from node_modules/ (`npm ci`); the tests skip when they are
missing, as they do when Chromium is not installed.
"""

import os
from pathlib import Path

import pytest

from apps.runs import testing_steps  # noqa: F401  (the worker and this process know the test.* types)
from tests.conftest import PASSWORD

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / "node_modules"
AXE_SCRIPT = NODE_MODULES / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "var" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-gpu"]

# Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still
# plain synchronous code between browser steps.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed: apt-get install chromium chromium-driver (make browser-deps)")
    if not (NODE_MODULES / "codemirror").exists() or not AXE_SCRIPT.exists():
        pytest.skip("node_modules is missing: run npm ci")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(autouse=True)
def editor_static_files(settings):
    """Serve node_modules' editor components as settings do, from this checkout's node_modules."""
    settings.STATICFILES_DIRS = [*settings.STATICFILES_DIRS, ("codemirror", NODE_MODULES / "codemirror"),
                                 ("ajv", NODE_MODULES / "ajv-dist" / "dist"),
                                 ("yaml", NODE_MODULES / "yaml" / "browser" / "dist")]


@pytest.fixture
def open_page(browser, live_server):
    """`open_page(user, color_scheme="light")`: a new browser page signed in as `user` through the login form."""
    contexts = []

    def open_as(user, color_scheme="light", viewport=None):
        context = browser.new_context(color_scheme=color_scheme, viewport=viewport or {"width": 1280, "height": 900})
        context.set_default_timeout(20_000)
        contexts.append(context)
        page = context.new_page()
        page.goto(f"{live_server.url}/accounts/login/")
        if user is not None:
            page.get_by_label("Username").fill(user.username)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(f"{live_server.url}/")
        return page

    yield open_as
    for context in contexts:
        context.close()


@pytest.fixture
def screenshot():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def save(page, name: str) -> None:
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    return save
