"""Value-level differences between two runs of a step: which parameters (as rendered for the
attempt) and which run inputs differ. One diff, shown by a gate's "what changed since the last
approved run" and by the investigation of a failed step (apps.runs.investigation)."""

import json
from collections.abc import Mapping
from dataclasses import dataclass

from apps.runs.models import AttemptKind, StepAttempt


@dataclass(frozen=True)
class ValueChange:
    """One value that differs from an earlier run (`before` None: it was not there; `now` None: it is gone)."""

    where: str  # "parameter" or "input"
    name: str
    before: str | None
    now: str | None


def value_changes(params_before: Mapping, params_now: Mapping, inputs_before: Mapping, inputs_now: Mapping
                  ) -> list[ValueChange]:
    changes = []
    for where, before, now in (("parameter", params_before or {}, params_now or {}),
                               ("input", inputs_before or {}, inputs_now or {})):
        for name in sorted(set(before) | set(now)):
            if before.get(name) != now.get(name) or (name in before) != (name in now):
                changes.append(ValueChange(where, name, _shown(before, name), _shown(now, name)))
    return changes


def params_of(run_id: int, step_id: str) -> dict:
    """The parameters the latest attempt of `step_id` in run `run_id` ran with (rendered)."""
    params = StepAttempt.objects.filter(step_run__run_id=run_id, step_run__step_id=step_id, kind=AttemptKind.STEP) \
        .order_by("-number").values_list("params", flat=True).first()
    return dict(params or {})


def _shown(values: Mapping, name: str) -> str | None:
    return json.dumps(values[name], ensure_ascii=False, default=str) if name in values else None
