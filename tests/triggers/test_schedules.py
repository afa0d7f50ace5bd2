"""Schedules: slots across daylight-saving changes, business calendars, catch-up, the next runs."""

from datetime import datetime, timedelta, timezone as dt_timezone
from zoneinfo import ZoneInfo

import pytest

from apps.runs.models import Run, Trigger
from apps.triggers import services
from apps.triggers.models import TriggerBinding, TriggerEvent
from apps.triggers.schedules import SlotRule

BERLIN = ZoneInfo("Europe/Berlin")
UTC = dt_timezone.utc


def day_slots(rule, day):
    start = datetime(day.year, day.month, day.day, tzinfo=BERLIN)
    end = start + timedelta(days=1)
    return [slot for slot in rule.slots_between(start - timedelta(seconds=1), end) if slot < end.astimezone(UTC)]


def test_daily_job_in_the_skipped_hour_runs_once_on_spring_forward_day():
    rule = SlotRule("30 2 * * *", "Europe/Berlin")
    slots = day_slots(rule, datetime(2026, 3, 29))
    # 02:30 does not exist that night: it runs once, shifted by the gap, at 03:30 CEST.
    assert slots == [datetime(2026, 3, 29, 1, 30, tzinfo=UTC)]
    assert slots[0].astimezone(BERLIN).strftime("%H:%M %Z") == "03:30 CEST"


def test_daily_job_in_the_repeated_hour_runs_once_on_fall_back_day():
    rule = SlotRule("30 2 * * *", "Europe/Berlin")
    assert day_slots(rule, datetime(2026, 10, 25)) == [datetime(2026, 10, 25, 0, 30, tzinfo=UTC)]


def test_hourly_job_follows_real_hours_across_both_changes():
    rule = SlotRule("0 * * * *", "Europe/Berlin")
    spring, autumn = day_slots(rule, datetime(2026, 3, 29)), day_slots(rule, datetime(2026, 10, 25))
    assert len(spring) == 23 and len(autumn) == 25
    for slots in (spring, autumn):
        assert all(later - earlier == timedelta(hours=1) for earlier, later in zip(slots, slots[1:]))


def test_tick_on_a_dst_day_starts_each_slot_exactly_once(db, make_workflow, schedule):
    workflow = make_workflow([schedule("30 2 * * *", "Europe/Berlin")])
    binding = TriggerBinding.objects.get(workflow=workflow)
    binding.handled_until = datetime(2026, 3, 28, 12, tzinfo=UTC)
    binding.save()
    # Ticks every minute through the spring-forward night, twice per minute to mimic overlap.
    moment = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)
    while moment < datetime(2026, 3, 29, 3, 0, tzinfo=UTC):
        services.fire_due_schedules(moment)
        services.fire_due_schedules(moment)
        moment += timedelta(minutes=1)
    runs = Run.objects.filter(workflow=workflow)
    assert runs.count() == 1 and runs.get().trigger == Trigger.SCHEDULE
    assert TriggerEvent.objects.get(workflow=workflow).slot_at == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


@pytest.mark.parametrize("policy, expected", [("skip", 0), ("once", 1), ("each", 3)])
def test_catch_up_policy_decides_runs_missed_while_down(db, make_workflow, schedule, policy, expected):
    workflow = make_workflow([schedule("0 6 * * *", "UTC", catch_up=policy)])
    TriggerBinding.objects.filter(workflow=workflow).update(handled_until=datetime(2026, 11, 1, 7, tzinfo=UTC))
    # Down from 1 Nov 07:00 to 4 Nov 12:00: the slots of 2, 3 and 4 Nov were missed.
    services.fire_due_schedules(datetime(2026, 11, 4, 12, tzinfo=UTC))
    assert Run.objects.filter(workflow=workflow).count() == expected
    if policy == "once":
        assert Run.objects.get(workflow=workflow).trigger_detail["slot"] == "2026-11-04T06:00:00+00:00"
    services.fire_due_schedules(datetime(2026, 11, 4, 12, 1, tzinfo=UTC))
    assert Run.objects.filter(workflow=workflow).count() == expected


def test_skip_holidays_leaves_out_uk_bank_holidays(db, make_workflow, schedule):
    workflow = make_workflow([schedule("0 9 * * 1-5", "Europe/London", calendar="uk-banking")])
    upcoming = services.next_run_times(workflow, n=3, now=datetime(2026, 12, 24, 12, tzinfo=UTC))
    # 25 Dec and the 28 Dec substitute Boxing Day are holidays; 26-27 Dec is a weekend.
    assert [slot["local"].date().isoformat() for slot in upcoming] == ["2026-12-29", "2026-12-30", "2026-12-31"]


def test_last_business_day_skips_a_month_end_holiday(db, make_workflow, schedule):
    workflow = make_workflow([schedule("0 18 * * *", "Europe/London", calendar="uk-banking:last_business_day")])
    upcoming = services.next_run_times(workflow, n=3, now=datetime(2026, 7, 1, tzinfo=UTC))
    # 31 Aug 2026 is the Summer bank holiday, so August closes on Friday 28th.
    assert [slot["local"].date().isoformat() for slot in upcoming] == ["2026-07-31", "2026-08-28", "2026-09-30"]


def test_unknown_calendar_is_reported_on_the_page(make_workflow, schedule, client_for, author):
    workflow = make_workflow([schedule("0 9 * * *", calendar="moon-holidays")])
    response = client_for(author).get(f"/triggers/workflows/{workflow.pk}/")
    assert response.status_code == 200
    assert "calendar `moon-holidays`, which does not exist" in response.content.decode()


def test_next_five_runs_partial_shows_local_times(make_workflow, schedule, client_for, viewer):
    workflow = make_workflow([schedule("15 7 * * *", "Europe/Berlin")])
    response = client_for(viewer).get(f"/triggers/workflows/{workflow.pk}/next-runs/")
    text = response.content.decode()
    assert response.status_code == 200 and text.count("<li>") == 5 and "07:15" in text


def test_next_runs_partial_says_what_to_do_without_a_schedule(make_workflow, client_for, viewer):
    workflow = make_workflow([])
    text = client_for(viewer).get(f"/triggers/workflows/{workflow.pk}/next-runs/").content.decode()
    assert "Add a\n    <code>schedule</code> trigger" in text


def test_outsider_cannot_see_a_workflows_triggers(make_workflow, schedule, client_for, outsider):
    workflow = make_workflow([schedule("0 6 * * *")])
    assert client_for(outsider).get(f"/triggers/workflows/{workflow.pk}/").status_code == 404


def test_a_new_version_without_the_schedule_stops_it(db, make_workflow, schedule):
    workflow = make_workflow([schedule("0 6 * * *")])
    assert TriggerBinding.objects.filter(workflow=workflow).count() == 1
    make_workflow([])
    assert not TriggerBinding.objects.filter(workflow=workflow).exists()


def test_the_tick_and_the_landing_scan_are_scheduled_in_beat(db):
    from django_celery_beat.models import PeriodicTask

    scheduled = set(PeriodicTask.objects.filter(enabled=True).values_list("task", flat=True))
    assert {"flowdeck.triggers.tick", "flowdeck.triggers.scan_landing", "flowdeck.monitoring.evaluate"} <= scheduled
