"""The decision form of a request's page: what it shows and what a submitted one means.

A checkpoint's retry parameters are a form from the step type's parameter schema, prefilled with
what the failed attempt used (JSON when the schema names no parameters); its skip output is a
form when the type declares an output schema, JSON otherwise. Only the fields that differ from
what the attempt used become the retry's `params_override`. A submitted form keeps what was
typed, and each unreadable field says why, so a refusal never loses the person's work.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from apps.approvals.models import ApprovalRequest, RequestKind, Verdict
from apps.approvals.services import InvalidDecision, last_params, parse_json_field
from apps.audit.log import redact
from apps.catalog.registry import get_step_type
from apps.catalog.schema_form import SchemaField, has_fields, schema_fields, values_from_form
from apps.logging import REDACTED

RETRY_PREFIX, OUTPUT_PREFIX = "param-", "output-"
TEXT_FIELDS = ("verdict", "comment", "reason_code", "params", "output")


@dataclass
class DecisionForm:
    """What the form shows: the typed text (or the prefilled values) and the errors by field."""

    text: dict[str, str] = field(default_factory=dict)
    submitted: Mapping | None = None  # the posted form, after a refusal (a gate's own fields read it too)
    retry_fields: list[SchemaField] = field(default_factory=list)
    retry_json: str = ""
    output_fields: list[SchemaField] = field(default_factory=list)
    output_json: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    def __getattr__(self, name: str) -> str:
        # The template reads `form.comment`, `form.verdict` ... as before.
        if name in TEXT_FIELDS:
            return self.text.get(name, "")
        raise AttributeError(name)


def decision_form(request: ApprovalRequest, submitted: Mapping | None = None,
                  errors: Mapping[str, str] | None = None) -> DecisionForm:
    """The form as first shown (prefilled), or as submitted, with its errors, after a refusal."""
    form = DecisionForm(text={key: (submitted or {}).get(key, "") for key in TEXT_FIELDS}, submitted=submitted,
                        errors=dict(errors or {}))
    if request.kind != RequestKind.CHECKPOINT:
        return form
    step_type = get_step_type(request.step_run.step_type)
    params_schema = step_type.params_schema if step_type else {}
    output_schema = step_type.output_schema if step_type else None
    ran_with = redact(last_params(request.step_run))
    if has_fields(params_schema):
        form.retry_fields = schema_fields(params_schema, ran_with, submitted=submitted, prefix=RETRY_PREFIX,
                                          errors=form.errors)
    else:
        form.retry_json = form.text["params"] if submitted is not None else _pretty(ran_with) if ran_with else ""
    if has_fields(output_schema):
        form.output_fields = schema_fields(output_schema, {}, submitted=submitted, prefix=OUTPUT_PREFIX,
                                           errors=form.errors)
    else:
        form.output_json = form.text["output"]
    return form


@dataclass(frozen=True)
class CheckpointChoice:
    params_override: dict | None
    skip_output: Any


def checkpoint_choice(request: ApprovalRequest, verdict: str, submitted: Mapping) -> CheckpointChoice:
    """The retry's changed parameters and the skip's output from a submitted form; InvalidDecision
    naming the fields that cannot be read."""
    step_type = get_step_type(request.step_run.step_type)
    if verdict == Verdict.RETRY:
        ran_with = last_params(request.step_run)
        if step_type is not None and has_fields(step_type.params_schema):
            typed, errors = values_from_form(step_type.params_schema, submitted, prefix=RETRY_PREFIX)
            _refuse_unreadable(errors)
        else:
            try:
                typed = parse_json_field(submitted.get("params", ""), "Parameters") or {}
            except InvalidDecision as exc:
                raise InvalidDecision(str(exc), {"params": str(exc)}) from None
            if not isinstance(typed, dict):
                raise InvalidDecision("Parameters must be a JSON object of names and values.",
                                      {"params": "Write a JSON object, for example {\"rows\": 10}."})
            # A redacted secret shown in the box stays as the attempt ran it.
            typed = {key: value for key, value in typed.items() if value != REDACTED}
        changed = {key: value for key, value in typed.items() if key not in ran_with or ran_with[key] != value}
        return CheckpointChoice(changed or None, None)
    if verdict == Verdict.SKIP:
        if step_type is not None and has_fields(step_type.output_schema):
            typed, errors = values_from_form(step_type.output_schema, submitted, prefix=OUTPUT_PREFIX)
            _refuse_unreadable(errors)
            return CheckpointChoice(None, typed)
        try:
            return CheckpointChoice(None, parse_json_field(submitted.get("output", ""), "Output"))
        except InvalidDecision as exc:
            raise InvalidDecision(str(exc), {"output": str(exc)}) from None
    return CheckpointChoice(None, None)


def _refuse_unreadable(errors: dict[str, str]) -> None:
    if errors:
        raise InvalidDecision("Some fields cannot be read: " + "; ".join(errors.values()), errors)


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=True)
