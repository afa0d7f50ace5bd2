"""`manage.py purge_runs --older-than 90d`: remove finished runs (and, with --audit-older-than,
audit events) past their retention, in small batches, printing progress."""

import re
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from apps.audit.retention import AuditPurgeRefused, purge_events
from apps.runs.retention import DEFAULT_BATCH_SIZE, purge_runs

UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def age(text: str) -> timedelta:
    match = re.fullmatch(r"(\d+)([hdw])", text.strip())
    if not match or int(match[1]) == 0:
        raise CommandError(f"{text!r} is not an age: write a number and h, d or w, for example 90d.")
    return timedelta(**{UNITS[match[2]]: int(match[1])})


class Command(BaseCommand):
    help = "Remove finished runs older than --older-than (and audit events older than --audit-older-than)."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", required=True, type=age, metavar="AGE",
                            help="finished runs created longer ago than this go (90d, 12w, 36h)")
        parser.add_argument("--audit-older-than", type=age, metavar="AGE",
                            help="also remove audit events older than this, behind a signed checkpoint")
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                            help=f"runs per transaction (default {DEFAULT_BATCH_SIZE})")
        parser.add_argument("--dry-run", action="store_true", help="count what would go, remove nothing")

    def handle(self, *args, older_than, audit_older_than=None, batch_size, dry_run, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        report = purge_runs(older_than, batch_size=batch_size, dry_run=dry_run,
                            progress=lambda r: self.stdout.write(f"  {r.runs} runs removed ({r.batches} batches)"))
        verb = "would remove" if dry_run else "removed"
        self.stdout.write(self.style.SUCCESS(
            f"Runs created before {report.cutoff:%Y-%m-%d %H:%M %Z}: {verb} {report.runs} finished runs"
            + ("" if dry_run else f", {report.step_runs} step runs, {report.attempts} attempts, "
                                   f"{report.artifact_folders} artifact folders") + "."))
        if audit_older_than is not None:
            try:
                audit = purge_events(audit_older_than, dry_run=dry_run)
            except AuditPurgeRefused as exc:
                raise CommandError(str(exc)) from None
            self.stdout.write(self.style.SUCCESS(
                f"Audit events before {audit.cutoff:%Y-%m-%d %H:%M %Z}: {verb} {audit.removed} "
                f"(from {len([n for n in audit.through.values() if n])} of {len(audit.through)} chains; each "
                f"verifies from its checkpoint)."))
