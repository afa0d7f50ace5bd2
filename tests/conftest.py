"""The standard cast, shared by every test module.

Team "billing" holds an author, an approver, an operator and a viewer; "people-ops" holds the
outsider, who must never see billing's things; the platform admin belongs to no team.
"""

import os

import pytest
from rest_framework.test import APIClient

from apps.runs import testing_steps  # noqa: F401  (registers the test.* step types for every test)
from tests.real_worker import wait_for, worker  # noqa: F401  (the session's real Celery worker)
from tests.throwaway_redis import redis_broker  # noqa: F401  (a Redis a test may kill and restart)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

PASSWORD = "correct-horse-battery"


@pytest.fixture(scope="session", autouse=True)
def flush_retries_a_deadlock():
    """A transactional test ends with a flush (one TRUNCATE of every table) while the session's
    real worker may still write: its liveness beat every half second, the after-commit work of a
    run that just ended. On PostgreSQL the two can deadlock, and when the flush is the victim the
    next test starts on the last one's rows. The flush is retried then; any other error stands."""
    from django.core.management.base import CommandError
    from django.test import TransactionTestCase

    teardown = TransactionTestCase._fixture_teardown

    def deadlocked(exc):
        while exc is not None:
            if getattr(exc, "sqlstate", None) == "40P01":
                return True
            exc = exc.__cause__
        return False

    def _fixture_teardown(self):
        for attempt in range(5):
            try:
                return teardown(self)
            except CommandError as exc:
                if attempt == 4 or not deadlocked(exc):
                    raise

    TransactionTestCase._fixture_teardown = _fixture_teardown
    yield
    TransactionTestCase._fixture_teardown = teardown


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # The default hasher costs ~0.2 s per user on this machine; tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def make_user(db):
    from apps.accounts.models import User

    def make(username, *, platform_admin=False):
        return User.objects.create_user(username=username, password=PASSWORD, email=f"{username}@example.com",
                                        is_platform_admin=platform_admin)

    return make


@pytest.fixture
def team(db):
    from apps.accounts.models import Team

    return Team.objects.create(slug="billing", name="Billing")


@pytest.fixture
def other_team(db):
    from apps.accounts.models import Team

    return Team.objects.create(slug="people-ops", name="People Ops")


def _member(make_user, team, username, *roles):
    from apps.accounts.models import Membership

    user = make_user(username)
    for role in roles:
        Membership.objects.create(user=user, team=team, role=role)
    return user


@pytest.fixture
def author(make_user, team):
    return _member(make_user, team, "ada-author", "author")


@pytest.fixture
def approver(make_user, team):
    return _member(make_user, team, "abe-approver", "approver")


@pytest.fixture
def second_approver(make_user, team):
    return _member(make_user, team, "amy-approver", "approver")


@pytest.fixture
def operator(make_user, team):
    return _member(make_user, team, "otto-operator", "operator")


@pytest.fixture
def viewer(make_user, team):
    return _member(make_user, team, "vic-viewer", "viewer")


@pytest.fixture
def outsider(make_user, other_team):
    return _member(make_user, other_team, "olga-outsider", "author", "operator", "approver")


@pytest.fixture
def platform_admin(make_user):
    return make_user("pat-platform", platform_admin=True)


@pytest.fixture
def approver_group(team, approver, second_approver):
    from apps.accounts.models import ApproverGroup

    group = ApproverGroup.objects.create(slug="billing-approvers", name="Billing approvers", team=team)
    group.members.set([approver, second_approver])
    return group


@pytest.fixture
def client_for(client):
    """`client_for(user)`: a Django test client signed in as `user`."""

    def signed_in(user):
        client.force_login(user)
        return client

    return signed_in


@pytest.fixture
def api_for(db):
    """`api_for(user)`: a DRF client authenticating with a fresh API token of `user`."""
    from apps.accounts.services import issue_token

    def with_token(user):
        _, key = issue_token(user, "test")
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        return api

    return with_token


@pytest.fixture(autouse=True)
def fresh_plans():
    # Ids come back after a rollback on SQLite; cached plans and counts must not outlive a test.
    from django.core.cache import cache

    from apps.workflows.plan import forget_plans

    forget_plans()
    cache.clear()  # cached counts (the inbox badge) must not outlive a test either
    yield
    forget_plans()
    cache.clear()


@pytest.fixture
def drive(monkeypatch):
    """`drive(run)` plays the worker in this process: every queued attempt is claimed, run and
    finished until nothing is left, without a broker."""
    from apps.runs import engine, tasks
    from apps.runs.models import AttemptState, StepAttempt

    monkeypatch.setattr(engine.attempts, "send_on_commit", lambda *args, **kwargs: None)
    # What the engine defers to after its commit (run_ended) runs after each attempt, as it would
    # after each real transaction; the test's own transaction never commits.
    after_commit = []
    monkeypatch.setattr(engine.advancing, "after_commit", after_commit.append)

    def settle():
        while after_commit:
            after_commit.pop(0)()

    def play(run, *, limit=500):
        settle()
        for _ in range(limit):
            attempt = StepAttempt.objects.filter(step_run__run=run, state=AttemptState.QUEUED).order_by("pk").first()
            if attempt is None:
                break
            tasks.run_attempt.run(attempt.pk)
            settle()
        run.refresh_from_db()
        return run

    return play


@pytest.fixture(autouse=True)
def each_app_writes_its_own_rows():
    """Fails a test whose code made one app save or delete another app's row (tests/ownership.py)."""
    from tests import ownership

    ownership.watch()
    ownership.found.clear()
    yield
    assert not ownership.found, "an app wrote another app's rows: " + "; ".join(sorted(ownership.found))


@pytest.fixture
def empty_broker_queues():
    """The broker's queues emptied of what earlier tests, or an earlier run on the same Redis, left
    in them: the sweeper counts the messages waiting to tell a lost one from one in line."""
    from apps.celery import app
    from apps.monitoring.broker_queues import known_queues

    with app.connection_for_write() as connection:
        for queue in known_queues():
            connection.default_channel.queue_purge(queue)
