"""Workflow versions with a normalized spec, built directly (no YAML), for engine tests."""

import hashlib
import json

from apps.workflows.models import Workflow, WorkflowVersion


def step(step_id, type_="test.echo", *, needs=(), params=None, when=None, retries=None, timeout=None,
         on_failure="fail", queue=None, approval=None, compensate=None):
    return {
        "id": step_id, "type": type_, "with": params or {}, "needs": list(needs), "when": when,
        "retries": {"count": 0, "backoff": "fixed", "delay": 0, "max_delay": 300, "jitter": False,
                    **(retries or {})},
        "timeout": timeout, "on_failure": on_failure, "queue": queue, "approval": approval, "compensate": compensate,
    }


def make_version(team, steps, *, name="wf", inputs=None, concurrency=None, author=None, sla=None, triggers=None):
    spec = {"name": name, "description": "", "inputs": inputs or {}, "triggers": triggers or [], "sla": sla,
            "concurrency": concurrency, "steps": steps}
    workflow, _ = Workflow.objects.get_or_create(team=team, name=name, defaults={"created_by": author})
    number = workflow.versions.count() + 1
    source = json.dumps(spec)
    version = WorkflowVersion.objects.create(workflow=workflow, number=number, source=source, spec=spec,
                                             source_sha256=hashlib.sha256(source.encode()).hexdigest(),
                                             created_by=author)
    workflow.current_version = version
    workflow.save(update_fields=["current_version"])
    return version


def chain(length, type_="test.noop"):
    return [step(f"s{i}", type_, needs=[f"s{i - 1}"] if i else []) for i in range(length)]


def decide(actor, target, choice, **given):
    """Decide the checkpoint of a failed step (`target` a StepRun) or of a paused run (a Run) the
    way every page and the API do, with a reason code and a comment."""
    from apps.approvals import services
    from apps.runs.models import Run

    reason = {"reason_code": "other", "comment": f"{choice} in a test"}
    if isinstance(target, Run):
        return services.end_run(actor, target, choice, **reason)
    return services.decide_step(actor, target, choice, **reason, **given)
