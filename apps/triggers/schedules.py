"""Schedule slots: when a `schedule` trigger is due, computed in the schedule's own time zone.

Cron reads wall-clock time, so slots are generated as naive local times and then placed on the
time line. Across daylight-saving changes this follows Vixie cron: a local time that does not
exist (spring forward) is shifted forward by the length of the gap (02:30 runs at 03:30), so a
daily job is never skipped; a local time that happens twice (fall back) runs once for
a job at fixed hours, and at both instants for a job whose hour field is `*`, so an hourly job
keeps running every real hour. Two slots on the same instant collapse into one.

A schedule may follow a business calendar: `calendar: uk-banking` (or `uk-banking:skip_holidays`)
drops slots on the calendar's holidays; `uk-banking:last_business_day` keeps only slots on the
month's last weekday that is not a holiday.
"""

from __future__ import annotations

import calendar as month_calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone as dt_timezone
from zoneinfo import ZoneInfo

from croniter import croniter

SKIP_HOLIDAYS = "skip_holidays"
LAST_BUSINESS_DAY = "last_business_day"
CALENDAR_RULES = (SKIP_HOLIDAYS, LAST_BUSINESS_DAY)


class CalendarUnknown(ValueError):
    """A schedule names a calendar or rule that does not exist."""


@dataclass(frozen=True)
class CalendarRule:
    slug: str
    rule: str

    @classmethod
    def parse(cls, text: str | None) -> CalendarRule | None:
        if not text:
            return None
        slug, _, rule = text.partition(":")
        rule = rule or SKIP_HOLIDAYS
        if rule not in CALENDAR_RULES:
            raise CalendarUnknown(f"`{rule}` is not a calendar rule: write `{slug}:skip_holidays` or "
                                  f"`{slug}:last_business_day`.")
        return cls(slug, rule)


class SlotRule:
    """The slots of one schedule: cron in a time zone, optionally filtered by a calendar."""

    def __init__(self, cron: str, tz_name: str, calendar: str | None = None, holidays: frozenset[date] = frozenset()):
        self.cron = cron
        self.zone = ZoneInfo(tz_name)
        self.calendar = CalendarRule.parse(calendar)
        self.holidays = holidays
        # Vixie cron: only jobs with a wildcard hour follow real time through a repeated hour.
        self.every_hour = cron.split()[1].startswith("*")
        self._last_business_days: dict[tuple[int, int], date] = {}

    def slots_between(self, after: datetime, until: datetime, limit: int = 10000) -> list[datetime]:
        """Slots strictly after `after` and at or before `until`, in UTC, oldest first."""
        slots: list[datetime] = []
        for slot in self._instants(after):
            if slot > until or len(slots) >= limit:
                break
            slots.append(slot)
        return slots

    def next_slots(self, after: datetime, n: int) -> list[datetime]:
        slots = []
        for slot in self._instants(after):
            slots.append(slot)
            if len(slots) == n:
                break
        return slots

    def _instants(self, after: datetime):
        """Slot instants (UTC) after `after`, in order, without repeats."""
        after = after.astimezone(dt_timezone.utc)
        # Start a little before, in local time: a repeated hour may hold slots before `after`'s wall time.
        start_local = after.astimezone(self.zone).replace(tzinfo=None) - timedelta(hours=3)
        iterator = croniter(self.cron, start_local)
        last = None
        pending: list[datetime] = []
        for _ in range(200000):
            local = iterator.get_next(datetime)
            if not self._allowed(local.date()):
                continue
            for instant in self._placements(local):
                pending.append(instant)
            pending.sort()
            # Instants from one local slot never precede those of the next by more than the 3h window.
            horizon = local.replace(tzinfo=self.zone).astimezone(dt_timezone.utc) - timedelta(hours=3)
            while pending and pending[0] <= horizon:
                instant = pending.pop(0)
                if instant > after and instant != last:
                    last = instant
                    yield instant
        for instant in pending:
            if instant > after and instant != last:
                last = instant
                yield instant

    def _placements(self, local: datetime) -> list[datetime]:
        first = local.replace(tzinfo=self.zone, fold=0).astimezone(dt_timezone.utc)
        second = local.replace(tzinfo=self.zone, fold=1).astimezone(dt_timezone.utc)
        if first == second:
            return [first]
        ambiguous = first < second  # fold=1 later: the wall time happens twice
        if ambiguous:
            return [first, second] if self.every_hour else [first]
        return [first]  # the wall time does not exist: fold=0 shifts it forward by the gap

    def _allowed(self, day: date) -> bool:
        if self.calendar is None:
            return True
        if self.calendar.rule == SKIP_HOLIDAYS:
            return day not in self.holidays
        return day == self._last_business_day(day.year, day.month)

    def _last_business_day(self, year: int, month: int) -> date:
        key = (year, month)
        if key not in self._last_business_days:
            day = date(year, month, month_calendar.monthrange(year, month)[1])
            while day.weekday() >= 5 or day in self.holidays:
                day -= timedelta(days=1)
            self._last_business_days[key] = day
        return self._last_business_days[key]
