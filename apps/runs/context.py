"""The StepContext a step's code receives for one attempt (the Protocol is in apps.catalog.registry).

It buffers log lines (capped per attempt) and writes them in bulk, reports liveness and progress,
notes side effects in the EffectLedger (unique per idempotency key, so a repeated attempt learns
that the effect was already applied: only effects recorded here are applied once; a call to an
outside service is at-least-once, with the same key), and stores outputs too large to keep inline
as artifacts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.catalog.registry import PermanentStepError
from apps.logging import get_logger
from apps.runs import engine
from apps.runs.models import DatasetDirection, EffectLedger, StepDataset, StepLogLine

logger = get_logger("flowdeck.step")
LOG_LEVELS = ("debug", "info", "warning", "error")


class AttemptRevoked(Exception):
    """The attempt is no longer this worker's (the run was cancelled, or the attempt was given to
    another worker after this one went silent): stop, its result would be discarded."""


class AttemptContext:
    def __init__(self, claimed: engine.ClaimedAttempt):
        self._claimed = claimed
        self.params: dict[str, Any] = claimed.params
        self.run_id = claimed.run_id
        self.step_id = claimed.step_id
        self.attempt = claimed.number
        self.idempotency_key = claimed.idempotency_key
        self.records_in = self.records_out = self.records_rejected = 0
        self.log_lines_dropped = 0
        self._kept_lines = 0
        self._pending_lines: list[StepLogLine] = []

    def log(self, message: str, level: str = "info", **fields: Any) -> None:
        level = level if level in LOG_LEVELS else "info"
        getattr(logger, level)(message, **fields)
        if self._kept_lines >= settings.FLOWDECK_STEP_LOG_MAX_LINES:
            self.log_lines_dropped += 1
            return
        self._kept_lines += 1
        self._pending_lines.append(StepLogLine(
            attempt_id=self._claimed.attempt_id, at=timezone.now(), level=level, message=str(message),
            fields=json.loads(json.dumps(fields, cls=DjangoJSONEncoder, default=str)),
        ))

    def flush_logs(self) -> None:
        if self._pending_lines:
            StepLogLine.objects.bulk_create(self._pending_lines)
            self._pending_lines = []

    def heartbeat(self, progress: dict[str, Any] | None = None) -> None:
        self.flush_logs()
        if not engine.heartbeat(self._claimed, progress):
            raise AttemptRevoked(f"attempt {self.idempotency_key} was cancelled or given to another worker")

    def add_metrics(self, *, records_in: int = 0, records_out: int = 0, records_rejected: int = 0) -> None:
        self.records_in += records_in
        self.records_out += records_out
        self.records_rejected += records_rejected

    def record_effect(self, kind: str, target: str, detail: dict[str, Any] | None = None) -> bool:
        try:
            with transaction.atomic():
                EffectLedger.objects.create(
                    idempotency_key=self.idempotency_key, kind=kind, target=target, detail=detail or {},
                    step_run_id=self._claimed.step_run_id, attempt_id=self._claimed.attempt_id)
        except IntegrityError:
            return False
        return True

    def record_dataset(self, direction: str, uri: str) -> None:
        StepDataset.objects.get_or_create(attempt_id=self._claimed.attempt_id, direction=DatasetDirection(direction),
                                          uri=uri)

    def artifact_path(self, filename: str) -> str:
        folder = self._artifact_folder()
        folder.mkdir(parents=True, exist_ok=True)
        path = (folder / filename).resolve()
        if folder.resolve() not in path.parents:
            raise PermanentStepError(f"artifact name {filename!r} must be a plain file name inside the attempt's folder")
        return str(path)

    def store_output(self, value: Any) -> tuple[Any, str]:
        """The output to keep inline, and the artifact path (relative to ARTIFACT_DIR) when it is too
        large: then the inline output is a reference {"artifact": path, "bytes": n}."""
        try:
            text = json.dumps(value, cls=DjangoJSONEncoder)
        except (TypeError, ValueError) as exc:
            raise PermanentStepError(f"the step returned an output that is not JSON ({exc}); return dicts, "
                                     f"lists, strings, numbers and booleans") from None
        size = len(text.encode())
        if size <= settings.FLOWDECK_STEP_OUTPUT_MAX_BYTES:
            return json.loads(text), ""
        path = Path(self.artifact_path("output.json"))
        path.write_text(text)
        relative = str(path.relative_to(Path(settings.ARTIFACT_DIR).resolve()))
        return {"artifact": relative, "bytes": size}, relative

    def _artifact_folder(self) -> Path:
        suffix = str(self.attempt) if self._claimed.kind == "step" else f"compensation-{self.attempt}"
        return Path(settings.ARTIFACT_DIR) / "runs" / str(self.run_id) / self.step_id / suffix
