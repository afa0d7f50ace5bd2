"""Platform admin pages: only platform admins open them; they report health, workers, queues,
step types and people, and say what to do when something is down."""

import pytest
from django.urls import reverse
from django.utils import timezone

ADMIN_PAGES = ["platform:overview", "platform:workers", "platform:step_types", "platform:people"]


@pytest.mark.parametrize("page", ADMIN_PAGES)
def test_platform_pages_refuse_everyone_but_platform_admins(client_for, author, operator, page):
    for person in (author, operator):
        assert client_for(person).get(reverse(page)).status_code == 403


@pytest.mark.parametrize("page", ADMIN_PAGES)
def test_platform_admins_open_every_platform_page(client_for, platform_admin, page):
    response = client_for(platform_admin).get(reverse(page))
    assert response.status_code == 200
    assert 'aria-label="Platform pages"' in response.content.decode()


def _heartbeat(kind, name, *, seconds_ago=0, **fields):
    """A liveness record as the process would write it, `seconds_ago`."""
    from apps.platform.liveness import record_heartbeat
    from apps.platform.models import ProcessHeartbeat

    record_heartbeat(kind, name, **fields)
    ProcessHeartbeat.objects.filter(kind=kind, name=name).update(
        beat_at=timezone.now() - timezone.timedelta(seconds=seconds_ago))


@pytest.fixture
def no_broadcast_answers(monkeypatch):
    """The broadcast fails as it does while every worker is busy; no worker of another test interferes."""
    from apps.celery import app

    def fail(**kwargs):
        raise ValueError("Expecting value: line 1 column 1 (char 0)")

    monkeypatch.setattr(app.control, "inspect", fail)


def test_health_says_beat_never_ran_and_what_to_do_then_healthy_after_its_heartbeat(client_for, platform_admin):
    client = client_for(platform_admin)
    page = client.get(reverse("platform:overview")).content.decode()
    assert "Database: healthy" in page and "Broker: healthy" in page
    assert "Beat: needs attention" in page and "Start one beat process" in page
    _heartbeat("beat", "beat@console")
    page = client.get(reverse("platform:overview")).content.decode()
    assert "Beat: healthy" in page and "beat@console ticked 0 s ago" in page


def test_stale_beat_is_reported_with_a_restart_hint(client_for, platform_admin, settings):
    settings.FLOWDECK_BEAT_STALE_SECONDS = 30
    _heartbeat("beat", "beat@console", seconds_ago=31)
    page = client_for(platform_admin).get(reverse("platform:overview")).content.decode()
    assert "Beat: needs attention" in page and "beat@console stopped writing its heartbeat 31 s ago" in page
    assert "restart the beat process" in page


def test_two_running_beats_are_reported(client_for, platform_admin):
    _heartbeat("beat", "beat@one")
    _heartbeat("beat", "beat@two")
    page = client_for(platform_admin).get(reverse("platform:overview")).content.decode()
    assert "Beat: needs attention" in page and "2 beat processes are running" in page


def test_workers_page_loads_its_report_by_htmx_with_queue_depths(client_for, platform_admin, monkeypatch):
    from apps.platform import health

    # A worker started by an end-to-end test elsewhere in the session would answer otherwise.
    monkeypatch.setattr(health, "worker_report", lambda: health.WorkerReport([]))
    client = client_for(platform_admin)
    shell = client.get(reverse("platform:workers")).content.decode()
    assert "Asking the workers" in shell and "<progress" in shell
    report = client.get(reverse("platform:workers"), HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in report
    # No worker runs in this test: the page says so and how to start one; the queues are still listed.
    assert "No worker has written its heartbeat" in report and "celery -A apps worker" in report
    assert "<code>steps</code>" in report and "no live worker" in report


def test_a_busy_worker_that_does_not_answer_the_broadcast_is_up_by_its_heartbeat(
        client_for, platform_admin, no_broadcast_answers):
    _heartbeat("worker", "w1@host", queues=["default", "steps"], concurrency=2, busy=2)
    client = client_for(platform_admin)
    report = client.get(reverse("platform:workers"), HTTP_HX_REQUEST="true").content.decode()
    assert '<strong class="worker-up">up</strong>' in report and "2 of 2 processes" in report
    assert "busy; it did not name its tasks in time" in report
    assert "Their status comes from their own heartbeats" in report
    assert "no live worker" not in report.split("<code>steps</code>")[-1].split("</tr>")[0]
    page = client.get(reverse("platform:overview")).content.decode()
    assert "Workers: healthy" in page and "1 worker up, 2 of 2 processes busy." in page


def test_a_worker_whose_heartbeat_went_stale_is_down_and_its_queues_unconsumed(
        client_for, platform_admin, no_broadcast_answers, settings):
    settings.FLOWDECK_WORKER_STALE_SECONDS = 6
    _heartbeat("worker", "w1@host", seconds_ago=7, queues=["steps"], concurrency=2, busy=2)
    client = client_for(platform_admin)
    report = client.get(reverse("platform:workers"), HTTP_HX_REQUEST="true").content.decode()
    assert '<strong class="worker-down">down</strong>' in report
    assert "no live worker" in report.split("<code>steps</code>")[-1].split("</tr>")[0]
    page = client.get(reverse("platform:overview")).content.decode()
    assert "Workers: needs attention" in page and "No worker wrote its heartbeat in the last 6 s." in page


def test_queue_depth_counts_messages_waiting_in_the_broker(platform_admin, tmp_path, settings):
    from kombu import Queue

    from apps.celery import app
    from apps.platform.health import queue_depths

    folders = {name: tmp_path / name for name in ("queue", "processed", "control")}
    for folder in folders.values():
        folder.mkdir()
    previous = app.conf.broker_transport_options
    app.conf.broker_transport_options = {**previous, "data_folder_in": str(folders["queue"]),
                                         "data_folder_out": str(folders["queue"]),
                                         "processed_folder": str(folders["processed"]),
                                         "control_folder": str(folders["control"])}
    try:
        with app.connection_for_write() as conn:
            # On a server broker (the services pass) the queues outlive the test: start them empty.
            for name in ("depth-test", "empty-test"):
                Queue(name, channel=conn.default_channel).declare()
                conn.default_channel.queue_purge(name)
            producer = conn.Producer()
            for _ in range(3):
                producer.publish({"n": 1}, routing_key="depth-test", declare=[Queue("depth-test")])
            depths = {depth.name: depth.messages for depth in queue_depths(["depth-test", "empty-test"], [])}
            conn.default_channel.queue_purge("depth-test")
    finally:
        app.conf.broker_transport_options = previous
    assert depths == {"depth-test": 3, "empty-test": 0}


def test_people_page_lists_teams_people_and_roles_with_admin_links(client_for, platform_admin, author, outsider):
    page = client_for(platform_admin).get(reverse("platform:people")).content.decode()
    assert "Billing" in page and "People Ops" in page
    assert "author in Billing" in page and "platform admin" in page
    assert reverse("admin:accounts_user_change", args=[author.pk]) in page
    found = client_for(platform_admin).get(reverse("platform:people"), {"q": "olga"}).content.decode()
    assert "olga-outsider" in found and "ada-author" not in found


def test_step_types_page_shows_queue_risk_and_links_to_the_catalog(client_for, platform_admin):
    page = client_for(platform_admin).get(reverse("platform:step_types")).content.decode()
    assert reverse("catalog:detail", args=["http.request"]) in page and "<code>steps</code>" in page
