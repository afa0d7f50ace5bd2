"""A StepContext for running step types directly in tests, recording what the step did."""

from dataclasses import dataclass, field
from typing import Any


@dataclass
class FakeStepContext:
    params: dict[str, Any]
    run_id: int = 1
    step_id: str = "step"
    attempt: int = 1
    idempotency_key: str = "run-1-step-attempt-1"
    # Shared between contexts to model one effect ledger across redeliveries.
    ledger: set = field(default_factory=set)
    logs: list = field(default_factory=list)
    heartbeats: list = field(default_factory=list)
    metrics: dict = field(default_factory=lambda: {"records_in": 0, "records_out": 0, "records_rejected": 0})
    datasets: list = field(default_factory=list)
    artifact_dir: str = "/tmp"

    def log(self, message: str, level: str = "info", **fields: Any) -> None:
        self.logs.append({"message": message, "level": level, **fields})

    def heartbeat(self, progress: dict[str, Any] | None = None) -> None:
        self.heartbeats.append(progress)

    def add_metrics(self, *, records_in: int = 0, records_out: int = 0, records_rejected: int = 0) -> None:
        self.metrics["records_in"] += records_in
        self.metrics["records_out"] += records_out
        self.metrics["records_rejected"] += records_rejected

    def record_effect(self, kind: str, target: str, detail: dict[str, Any] | None = None) -> bool:
        entry = (self.idempotency_key, kind, target)
        if entry in self.ledger:
            return False
        self.ledger.add(entry)
        return True

    def record_dataset(self, direction: str, uri: str) -> None:
        self.datasets.append((direction, uri))

    def artifact_path(self, filename: str) -> str:
        return f"{self.artifact_dir}/{filename}"


def run_step(type_name: str, params: dict, **context) -> tuple[Any, FakeStepContext]:
    """Run step type `type_name` with `params`; returns its output and the context it saw."""
    from apps.catalog.registry import get_step_type

    ctx = FakeStepContext(params=params, **context)
    return get_step_type(type_name).run(ctx), ctx
