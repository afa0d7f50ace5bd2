"""The normalized spec: the contract between the spec language and the engine.

`normalize(document)` turns a schema-valid YAML document into this shape, filling defaults,
so the engine never has to know about shorthand forms. Durations are whole seconds.

    {
      "name": "payroll-run",
      "description": "",
      "inputs": {"period": {"type": "string", "required": True, "default": None, "description": ""}},
                                           # plus "enum": [...] when the YAML lists allowed values;
                                           # "required" is true unless the input has a default
      "triggers": [                        # each a one-key dict:
        {"schedule": {"cron": "0 2 * * *", "timezone": "UTC", "calendar": None, "catch_up": "skip" | "once" | "each"}}
        | {"webhook": {"batch": None | {"max_items": 100 | None, "max_wait": 600 | None}}}
        | {"file": {"path": "incoming/*.csv", "marker": None | "incoming/READY"}}
        | {"queue": {"connection": "events", "queue": "invoices", "batch": None | {...}}}
                                           # a RabbitMQ queue, or a Redis stream on a redis connection
        | {"after": {"workflow": "nightly-etl", "status": "succeeded" | "failed" | "finished"}}
      ],
      "sla": {"max_duration": 3600 | None, "finish_by": "06:00" | None, "timezone": "UTC"} | None,
      "concurrency": 1 | None,            # max runs of this workflow at once; None = unlimited
      "steps": [                           # in the order written
        {
          "id": "extract",
          "type": "http.request",
          "with": {...},                   # parameters, may hold {{ templates }}
          "needs": ["other-step-id"],
          "when": "inputs.amount > 100" | None,    # a condition expression, no braces
          "retries": {"count": 0, "backoff": "fixed" | "exponential", "delay": 5, "max_delay": 300, "jitter": True,
                      "when": "always" | "transient"},
          "timeout": 300 | None,           # None: the step type's default
          "on_failure": "fail" | "continue" | "pause",
          "queue": None | "name",          # None: the step type's queue
          "approval": None | {
              "group": "billing-approvers", "quorum": 1,      # one group decides; or, instead:
              "stages": [{"mode": "all" | "any", "groups": [{"group": "finance", "quorum": 1}]}],
                                           # sign-offs in order; `any_of:`/`all_of:` alone is one stage
              "timeout": 86400 | None, "escalate_to": "group" | None, "on_expiry": "reject" | "escalate",
              "form": None | {"type": "object", "required": [...], "properties": {"name": {"type": ...}}},
              "on_reject": "fail" | "skip" | "continue",
              "options": [] | ["pay_now", "pay_next_cycle"],
              "auto_approve": None | "inputs.amount < 1000",   # a condition expression, no braces
              "reapprove": "on_change" | "always",  # in a rerun: keep an unchanged step's approval?
              "remind": [3600, 600],       # seconds before expiry, latest first
          },                               # form, on_reject, options, auto_approve, reapprove, remind: only when given
          "compensate": None | {"type": "http.request", "with": {...}},
        },
      ],
    }

`defaults` in the YAML (retries, timeout, on_failure, queue) are merged into every step that
does not set its own (for retries, field by field); they do not appear in the normalized form.
The YAML shorthands `needs: a`, `retries: 3` and `approval: group-slug` become the full forms.
"""

from __future__ import annotations

from typing import Any

_SECONDS_PER_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# `when` is not filled in (versions saved before it existed would all read as changed): a
# missing one means "always", see plan.StepPlan.retries.
DEFAULT_RETRIES = {"count": 0, "backoff": "fixed", "delay": 5, "max_delay": 300, "jitter": True}
# `defaults` may set these; a step's own value wins.
DEFAULTABLE = ("retries", "timeout", "on_failure", "queue")


def parse_duration(value: int | str | None) -> int | None:
    """Whole seconds from 90, "90s", "5m", "2h" or "1d" (the schema has checked the form)."""
    if value is None or isinstance(value, int):
        return value
    return int(value[:-1]) * _SECONDS_PER_UNIT[value[-1]]


def normalize(document: dict[str, Any]) -> dict[str, Any]:
    """The normalized spec (shape above) of a document that passed schema and semantic checks."""
    defaults = document.get("defaults") or {}
    sla = document.get("sla")
    return {
        "name": document["name"],
        "description": document.get("description", ""),
        "inputs": {name: _input(declared) for name, declared in (document.get("inputs") or {}).items()},
        "triggers": [_trigger(trigger) for trigger in document.get("triggers") or []],
        "sla": None if sla is None else {
            "max_duration": parse_duration(sla.get("max_duration")),
            "finish_by": sla.get("finish_by"),
            "timezone": sla.get("timezone", "UTC"),
        },
        "concurrency": document.get("concurrency"),
        "steps": [_step(step, defaults) for step in document["steps"]],
    }


def _input(declared: dict[str, Any]) -> dict[str, Any]:
    normalized = {
        "type": declared["type"],
        # An input with a default need not be given; one without must be, unless marked optional.
        "required": declared.get("required", "default" not in declared),
        "default": declared.get("default"),
        "description": declared.get("description", ""),
    }
    if "enum" in declared:
        normalized["enum"] = declared["enum"]
    return normalized


def _batch(batch: dict[str, Any] | None) -> dict[str, Any] | None:
    if batch is None:
        return None
    return {"max_items": batch.get("max_items"), "max_wait": parse_duration(batch.get("max_wait"))}


def _trigger(trigger: dict[str, Any]) -> dict[str, Any]:
    (kind, body), = trigger.items()
    body = body or {}
    shapes = {
        "schedule": lambda: {"cron": body["cron"], "timezone": body.get("timezone", "UTC"),
                             "calendar": body.get("calendar"), "catch_up": body.get("catch_up", "skip")},
        "webhook": lambda: {"batch": _batch(body.get("batch"))},
        "file": lambda: {"path": body["path"], "marker": body.get("marker")},
        "queue": lambda: {"connection": body["connection"], "queue": body["queue"], "batch": _batch(body.get("batch"))},
        "after": lambda: {"workflow": body["workflow"], "status": body.get("status", "succeeded")},
    }
    return {kind: shapes[kind]()}


def retries_of(value: int | dict[str, Any] | None, default: int | dict[str, Any] | None = None) -> dict[str, Any]:
    """The full retries form: the step's own fields over the defaults' over the built-in ones."""
    merged = dict(DEFAULT_RETRIES)
    for layer in (default, value):
        if isinstance(layer, int):
            merged["count"] = layer
        elif isinstance(layer, dict):
            merged.update(layer)
    merged["delay"] = parse_duration(merged["delay"])
    merged["max_delay"] = parse_duration(merged["max_delay"])
    return merged


def _approval(approval: str | dict[str, Any] | None) -> dict[str, Any] | None:
    if approval is None:
        return None
    if isinstance(approval, str):
        approval = {"group": approval}
    escalate_to = approval.get("escalate_to")
    # Who decides: one group as before, else the sign-offs in order.
    deciders = {"group": approval["group"], "quorum": approval.get("quorum", 1)} if "group" in approval \
        else {"stages": [_stage(stage) for stage in approval.get("stages") or [approval]]}
    normalized = {
        **deciders,
        "timeout": parse_duration(approval.get("timeout")),
        "escalate_to": escalate_to,
        "on_expiry": approval.get("on_expiry", "escalate" if escalate_to else "reject"),
    }
    # Written only when given, so a step written before they existed stays equal to itself.
    form = approval.get("form")
    if form is not None:
        normalized["form"] = {"type": "object", "required": form.get("required") or [], "properties": form["properties"]}
    for key in ("on_reject", "options", "auto_approve", "reapprove"):
        if key in approval:
            normalized[key] = approval[key]
    if approval.get("remind"):
        normalized["remind"] = sorted({parse_duration(before) for before in approval["remind"]}, reverse=True)
    return normalized


def _stage(stage: dict[str, Any]) -> dict[str, Any]:
    """One sign-off: `group:` (with `quorum:`), `any_of:` or `all_of:` (each a slug or a group with its quorum)."""
    if "group" in stage:
        return {"mode": "all", "groups": [{"group": stage["group"], "quorum": stage.get("quorum", 1)}]}
    mode = "any" if "any_of" in stage else "all"
    return {"mode": mode, "groups": [{"group": entry, "quorum": 1} if isinstance(entry, str)
                                     else {"group": entry["group"], "quorum": entry.get("quorum", 1)}
                                     for entry in stage[f"{mode}_of"]]}


def needs_of(step: dict[str, Any]) -> list[str]:
    needs = step.get("needs") or []
    return [needs] if isinstance(needs, str) else list(needs)


def _step(step: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    def chosen(field: str, fallback=None):
        return step.get(field, defaults.get(field, fallback))

    compensate = step.get("compensate")
    return {
        "id": step["id"],
        "type": step["type"],
        "with": step.get("with") or {},
        "needs": needs_of(step),
        "when": step.get("when"),
        "retries": retries_of(step.get("retries"), defaults.get("retries")),
        "timeout": parse_duration(chosen("timeout")),
        "on_failure": chosen("on_failure", "fail"),
        "queue": chosen("queue"),
        "approval": _approval(step.get("approval")),
        "compensate": None if compensate is None else {"type": compensate["type"], "with": compensate.get("with") or {}},
    }
