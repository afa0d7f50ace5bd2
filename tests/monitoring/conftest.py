"""Monitoring tests reuse the triggers fixtures: workflows from a normalized spec and `drive`."""

import pytest

from tests.triggers.conftest import make_workflow  # noqa: F401  (shared fixture)


@pytest.fixture
def notified(monkeypatch):
    """Every notify() call as (event_kind, subject, usernames) instead of mail and webhooks."""
    from apps.notifications import services as notify

    calls = []

    def capture(event_kind, subject, body, recipients, context=None):
        calls.append((event_kind, subject, sorted(getattr(r, "username", r) for r in recipients)))

    monkeypatch.setattr(notify, "notify", capture)
    return calls
