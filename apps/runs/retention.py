"""Retention: finished runs older than a policy are removed with everything the runs app holds of
them (step runs, attempts, log lines, effects, datasets, artifact files), a small batch per
transaction so no lock is held for long and the console stays usable while it works.

Other apps' rows about those runs are theirs to remove or detach: `runs_purging` is sent inside
each batch's transaction, before the runs go, with the batch's run ids.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.audit.log import record
from apps.runs import signals
from apps.runs.models import FINISHED_RUN_STATES, EffectLedger, Run, StepDataset, StepLogLine, StepRun

DEFAULT_BATCH_SIZE = 200


@dataclass
class PurgeReport:
    cutoff: datetime
    runs: int = 0
    step_runs: int = 0
    attempts: int = 0
    batches: int = 0
    artifact_folders: int = 0
    dry_run: bool = False
    run_ids: list[int] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict:
        return {"cutoff": self.cutoff.isoformat(), "runs": self.runs, "step_runs": self.step_runs,
                "attempts": self.attempts, "batches": self.batches,
                "artifact_folders": self.artifact_folders}


def purgeable(cutoff: datetime):
    """Runs created before `cutoff` that have finished (an old run still paused or running stays)."""
    return Run.objects.filter(created_at__lt=cutoff, state__in=FINISHED_RUN_STATES)


def purge_runs(older_than: timedelta, *, batch_size: int = DEFAULT_BATCH_SIZE, now: datetime | None = None,
               dry_run: bool = False, progress=None) -> PurgeReport:
    """Remove finished runs created more than `older_than` ago, `batch_size` runs a transaction.
    `progress(report)` is called after each batch."""
    report = PurgeReport(cutoff=(now or timezone.now()) - older_than, dry_run=dry_run)
    if dry_run:
        report.runs = purgeable(report.cutoff).count()
        return report
    while True:
        ids = list(purgeable(report.cutoff).order_by("created_at", "id").values_list("pk", flat=True)[:batch_size])
        if not ids:
            break
        _purge_batch(ids, report)
        if progress:
            progress(report)
    if report.runs:
        record(None, "runs.purged", object_type="runs.run", object_id="retention", after=report.as_dict())
    return report


def _purge_batch(run_ids: list[int], report: PurgeReport) -> None:
    with transaction.atomic():
        signals.runs_purging.send(sender=Run, run_ids=run_ids)
        # Leaves first, so each delete is one statement (nothing left to cascade to).
        StepLogLine.objects.filter(attempt__step_run__run_id__in=run_ids).delete()
        StepDataset.objects.filter(attempt__step_run__run_id__in=run_ids).delete()
        EffectLedger.objects.filter(step_run__run_id__in=run_ids).delete()
        # A kept rerun's reused steps and the rerun itself point at what goes; they keep their copies.
        StepRun.objects.filter(reused_from__run_id__in=run_ids).exclude(run_id__in=run_ids).update(reused_from=None)
        Run.objects.filter(rerun_of_id__in=run_ids).exclude(pk__in=run_ids).update(rerun_of=None)
        _, removed = Run.objects.filter(pk__in=run_ids).delete()
        report.runs += removed.get("runs.Run", 0)
        report.step_runs += removed.get("runs.StepRun", 0)
        report.attempts += removed.get("runs.StepAttempt", 0)
        report.batches += 1
        transaction.on_commit(lambda: _remove_artifacts(run_ids, report))


def _remove_artifacts(run_ids: list[int], report: PurgeReport) -> None:
    root = Path(settings.ARTIFACT_DIR) / "runs"
    for run_id in run_ids:
        folder = root / str(run_id)
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            report.artifact_folders += 1
