"""Loading a spec: parse, check the shape against the JSON Schema, check the meaning, normalize.

`load_spec(text)` reports every error it can find at once, each located at a line and a field
with a hint saying how to fix it. Meaning checks run even when some shapes are wrong, skipping
only the values they cannot read, so one save shows the whole list. `validate_inputs` checks
the inputs given to a run against the inputs a spec declares.
"""

from __future__ import annotations

import ast
import difflib
import re
import zoneinfo
from functools import lru_cache
from typing import Any, Iterable

from croniter import croniter
from django.db.models import Count
from jinja2 import TemplateSyntaxError
from jinja2.defaults import DEFAULT_NAMESPACE
from jsonschema import Draft202012Validator, ValidationError

from apps.catalog.registry import Risk, all_step_types, get_step_type
from apps.workflows.spec.errors import Path, SpecError, SpecResult
from apps.workflows.spec.normalize import needs_of, normalize, parse_duration
from apps.workflows.spec.parse import LocatedDocument, parse_yaml
from apps.workflows.spec.schema import (
    CLOCK_PATTERN, DURATION_PATTERN, INPUT_NAME_PATTERN, NAME_PATTERN, OPTION_PATTERN, SPEC_SCHEMA, STEP_ID_PATTERN,
)
from apps.workflows.spec.templating import (
    decision_reads, is_template, limit_problems, template_references, template_sources,
)

_spec_validator = Draft202012Validator(SPEC_SCHEMA)
# Jinja names a template may use besides the context: its globals and the for-loop variable.
_TEMPLATE_GLOBALS = {*DEFAULT_NAMESPACE, "loop"}
_JSON_TYPE_NAMES = {dict: "a mapping", list: "a list", str: "text", bool: "true/false", int: "a whole number",
                    float: "a number", type(None): "empty"}
_SCHEMA_TYPE_NAMES = {"object": "a mapping", "array": "a list", "string": "text", "boolean": "true or false",
                      "integer": "a whole number", "number": "a number", "null": "empty"}
_BOUNDS = {"minimum": ("small", "at least"), "exclusiveMinimum": ("small", "more than"),
           "maximum": ("large", "at most"), "exclusiveMaximum": ("large", "less than")}
# What a failed `pattern` means, for the patterns the spec schema uses.
_PATTERN_HELP = {
    DURATION_PATTERN: ("is not a duration",
                       'Write whole seconds, or a number with s, m, h or d, such as "30s", "5m" or "2h".'),
    STEP_ID_PATTERN: ("is not a valid step id",
                      "Use lower-case letters, digits, - and _, starting with a letter, such as `load_ledger`."),
    NAME_PATTERN: ("is not a valid workflow name",
                   "Use lower-case letters, digits and dashes, such as `invoicing-cycle`."),
    CLOCK_PATTERN: ("is not a time of day", 'Write a 24-hour time in quotes, such as "06:30".'),
    INPUT_NAME_PATTERN: ("is not a valid input name",
                         "Use lower-case letters, digits and _, starting with a letter, such as `period_end`."),
    OPTION_PATTERN: ("is not a valid option name",
                     "Use lower-case letters, digits and _, starting with a letter, such as `pay_now`."),
}
_DATE_FIELD_HINT = "A date is text in a set form: write `type: string` and `format: date`."
# Fields whose name changed, by (parent field, old name): a spec using the old name is told the new one.
_RENAMED_FIELDS = {("batch", "size"): "max_items", ("batch", "window"): "max_wait"}


def load_spec(text: str) -> SpecResult:
    """The normalized spec of `text`, or every located error found in it."""
    document, errors = parse_yaml(text)
    if errors:
        return SpecResult(errors=errors)
    if not isinstance(document.data, dict):
        return SpecResult(errors=[document.error((), "the spec must be a mapping of fields",
                                                 "Start with `name:` and a `steps:` list.")])
    errors = list(schema_errors(_spec_validator, document.data, document))
    errors += _SemanticCheck(document).errors()
    if errors:
        return SpecResult(errors=_ordered(errors))
    return SpecResult(spec=normalize(document.data))


def _ordered(errors: Iterable[SpecError]) -> list[SpecError]:
    unique = list(dict.fromkeys(errors))
    return sorted(unique, key=lambda e: (e.line or 0, e.column or 0, e.path))


# --- Shape: JSON Schema errors, translated and located ----------------------------------------

def schema_errors(validator: Draft202012Validator, instance, document: LocatedDocument,
                  base: Path = ()) -> Iterable[SpecError]:
    """Every error of `validator` on `instance` (found at `base` in the document), in plain words.

    Templated strings stand for values known only at run time, so errors they cause are dropped.
    """
    for error in validator.iter_errors(instance):
        if _caused_by_template(error):
            continue
        yield from _translate(error, document, (*base, *error.absolute_path))


def _caused_by_template(error: ValidationError) -> bool:
    if is_template(error.instance):
        return True
    if error.validator in ("anyOf", "oneOf") and error.context:
        return any(all(_caused_by_template(sub) for sub in subs) for subs in _branches(error))
    return False


def _branches(error: ValidationError) -> list[list[ValidationError]]:
    """The errors of an anyOf/oneOf, grouped by the alternative that raised them."""
    grouped: dict[Any, list[ValidationError]] = {}
    for sub in error.context:
        grouped.setdefault(sub.schema_path[0], []).append(sub)
    return list(grouped.values())


def _translate(error: ValidationError, document: LocatedDocument, path: Path) -> Iterable[SpecError]:
    kind, value, instance = error.validator, error.validator_value, error.instance
    if kind == "required":
        missing = ast.literal_eval(error.message.removesuffix(" is a required property"))
        yield document.error(path, f"`{missing}` is missing", f"Add `{missing}:` here.")
    elif kind == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        for extra in (key for key in instance if key not in allowed):
            renamed = _RENAMED_FIELDS.get((path[-1] if path else None, extra))
            hint = f"It is called `{renamed}` now: write `{renamed}:` instead." if renamed else \
                _did_you_mean(extra, allowed, "Remove it; allowed here: " + ", ".join(allowed) + ".")
            yield document.error((*path, extra), f"`{extra}` is not a field here", hint, at_key=True)
    elif kind == "pattern":
        message, hint = _PATTERN_HELP.get(value, (f"does not match {value}", "Change it to match the pattern."))
        # A key checked by `propertyNames` is reported at the key itself.
        naming_a_key = "propertyNames" in error.absolute_schema_path
        yield document.error((*path, instance) if naming_a_key else path, f"`{instance}` {message}", hint,
                             at_key=naming_a_key)
    elif kind == "type":
        expected = " or ".join(_SCHEMA_TYPE_NAMES[t] for t in ([value] if isinstance(value, str) else value))
        actual = _JSON_TYPE_NAMES.get(type(instance), type(instance).__name__)
        yield document.error(path, f"must be {expected}, not {actual}", _type_hint(error, expected))
    elif kind in ("enum", "const"):
        choices = [str(choice) for choice in (value if kind == "enum" else [value])]
        hint = _DATE_FIELD_HINT if "form" in path and path[-1:] == ("type",) and instance == "date" else \
            _did_you_mean(str(instance), choices, f"Use one of: {', '.join(choices)}.")
        yield document.error(path, f"`{instance}` is not one of: {', '.join(choices)}", hint)
    elif kind in _BOUNDS:
        size, bound = _BOUNDS[kind]
        yield document.error(path, f"{instance} is too {size}: it must be {bound} {value}", f"Use a value {bound} {value}.")
    elif kind in ("minItems", "minLength", "minProperties"):
        yield document.error(path, "must not be empty", _empty_hint(path))
    elif kind in ("anyOf", "oneOf") and error.context:
        yield from _translate_alternatives(error, document, path)
    elif kind == "not":
        yield document.error(path, "these fields cannot be given together here",
                             "Keep only one of them; the step type's page says which fields go together.")
    elif kind == "maxProperties" and path[:1] == ("triggers",):
        yield document.error(path, f"a trigger has exactly one kind, this one has {len(instance)}: {', '.join(instance)}",
                             "Write each trigger as its own list item starting with `- `.")
    else:
        yield document.error(path, error.message, "Change this value to one allowed here: see the step type's page, "
                                                  "or the spec schema at /api/v1/workflows/schema.")


def _translate_alternatives(error: ValidationError, document: LocatedDocument, path: Path) -> Iterable[SpecError]:
    """A value that fits none of several forms: name the missing field, or the closest form's problem."""
    if all(sub.validator == "required" for sub in error.context):
        names = sorted({ast.literal_eval(sub.message.removesuffix(" is a required property")) for sub in error.context})
        yield document.error(path, "needs one of: " + ", ".join(f"`{name}`" for name in names),
                             f"Add `{names[0]}:`" + (f" or `{names[1]}:`." if len(names) > 1 else "."))
        return
    # The form the value comes closest to is the one with the fewest complaints.
    closest = min(_branches(error), key=len)
    for sub in closest:
        yield from _translate(sub, document, (*path, *sub.relative_path))


def _type_hint(error: ValidationError, expected: str) -> str:
    if error.schema.get("pattern") == DURATION_PATTERN:
        return _PATTERN_HELP[DURATION_PATTERN][1]
    if expected == "text":
        return "Write it as text; put it in quotes if YAML reads it as something else."
    return f"Write {expected} here."


def _empty_hint(path: Path) -> str:
    if path == ("steps",):
        return "Add at least one step, such as `- id: hello` with `type: echo`."
    if path[:1] == ("triggers",):
        return "Name the kind of trigger: schedule, webhook, file, queue or after."
    return "Give it a value, or remove it."


def _did_you_mean(word: str, choices: Iterable[str], otherwise: str) -> str:
    close = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.6)
    if close:
        return "Did you mean " + " or ".join(f"`{c}`" for c in close) + "?"
    return otherwise


# --- Meaning: ids, dependencies, step types, templates, triggers, approvals, inputs ------------

class _SemanticCheck:
    """One pass over a parsed document; values of the wrong shape were reported by the schema."""

    def __init__(self, document: LocatedDocument):
        self.document = document
        self.data: dict[str, Any] = document.data
        self.found: list[SpecError] = []
        self.steps = [(index, step) for index, step in enumerate(_list(self.data.get("steps")))
                      if isinstance(step, dict)]
        self.step_ids = [step["id"] for _, step in self.steps if isinstance(step.get("id"), str)]
        self.needs = {step["id"]: [n for n in _needs(step) if n in self.step_ids]
                      for _, step in self.steps if isinstance(step.get("id"), str)}
        inputs = self.data.get("inputs")
        self.input_names = set(inputs) if isinstance(inputs, dict) else set()
        # What each gated step may decide, read downstream as `steps.<id>.decision`.
        self.outcomes = {step["id"]: _outcomes(step) for _, step in self.steps
                         if isinstance(step.get("id"), str) and _gated(step)}

    def error(self, path: Path, message: str, hint: str, *, at_key: bool = False) -> None:
        self.found.append(self.document.error(path, message, hint, at_key=at_key))

    def errors(self) -> list[SpecError]:
        self.check_step_ids()
        self.check_needs()
        self.check_cycles()
        for index, step in self.steps:
            self.check_step_type(index, step)
            self.check_templates(index, step)
        self.check_approvals()
        self.check_triggers()
        self.check_sla()
        self.check_inputs()
        return self.found

    def check_step_ids(self) -> None:
        first_index: dict[str, int] = {}
        for index, step in self.steps:
            step_id = step.get("id")
            if not isinstance(step_id, str):
                continue
            if step_id in first_index:
                self.error(("steps", index, "id"), f"step id `{step_id}` is already used by steps[{first_index[step_id]}]",
                           "Give each step its own id.")
            else:
                first_index[step_id] = index

    def check_needs(self) -> None:
        for index, step in self.steps:
            needs = step.get("needs")
            for position, needed in enumerate(_needs(step)):
                path = ("steps", index, "needs") if isinstance(needs, str) else ("steps", index, "needs", position)
                if needed == step.get("id"):
                    self.error(path, f"step `{needed}` needs itself", "Remove it from its own `needs`.")
                elif needed not in self.step_ids:
                    self.error(path, f"`{needed}` is not a step in this workflow",
                               _did_you_mean(needed, self.step_ids, "Use the id of a step defined under `steps`."))

    def check_cycles(self) -> None:
        index_of = {step["id"]: index for index, step in reversed(self.steps) if isinstance(step.get("id"), str)}
        state: dict[str, str] = {}
        reported: set[tuple[str, ...]] = set()

        def visit(step_id: str, stack: list[str]) -> None:
            state[step_id] = "open"
            stack.append(step_id)
            for needed in self.needs.get(step_id, []):
                if needed == step_id:
                    continue  # reported by check_needs
                if state.get(needed) == "open":
                    cycle = stack[stack.index(needed):]
                    start = cycle.index(min(cycle))
                    cycle = cycle[start:] + cycle[:start]
                    if tuple(cycle) not in reported:
                        reported.add(tuple(cycle))
                        self.error(("steps", index_of[cycle[0]], "needs"),
                                   "these steps need each other in a circle: " + " -> ".join([*cycle, cycle[0]]),
                                   "Remove one of these `needs` so the steps can run in some order.")
                elif needed not in state:
                    visit(needed, stack)
            stack.pop()
            state[step_id] = "done"

        for step_id in self.needs:
            if step_id not in state:
                visit(step_id, [])

    def upstream_of(self, step_id: str) -> set[str]:
        """Steps that finish before `step_id` starts: its needs, their needs, and so on."""
        seen: set[str] = set()
        pending = list(self.needs.get(step_id, []))
        while pending:
            current = pending.pop()
            if current not in seen:
                seen.add(current)
                pending.extend(self.needs.get(current, []))
        seen.discard(step_id)
        return seen

    def check_step_type(self, index: int, step: dict[str, Any]) -> None:
        self.check_params(("steps", index), step.get("type"), step.get("with", {}))
        compensate = step.get("compensate")
        if isinstance(compensate, dict):
            self.check_params(("steps", index, "compensate"), compensate.get("type"), compensate.get("with", {}))

    def check_params(self, path: Path, type_name, params) -> None:
        if not isinstance(type_name, str) or not type_name:
            return
        step_type = get_step_type(type_name)
        if step_type is None:
            self.error((*path, "type"), f"there is no step type `{type_name}`",
                       _did_you_mean(type_name, _step_type_names(),
                                     "Pick one from the Step types page; the platform team can add new ones."))
            return
        if isinstance(params, dict):
            self.found.extend(schema_errors(_params_validator(type_name), params, self.document, (*path, "with")))

    def check_templates(self, index: int, step: dict[str, Any]) -> None:
        step_id = step.get("id")
        upstream = self.upstream_of(step_id) if isinstance(step_id, str) else set()
        for relative, source in template_sources(step.get("with", {}), ("with",)):
            self.check_references(("steps", index, *relative), source, step_id, upstream, expression=False)
        compensate = step.get("compensate")
        if isinstance(compensate, dict):
            # Compensation undoes this very step, so it may read this step's output too.
            for relative, source in template_sources(compensate.get("with", {}), ("compensate", "with")):
                self.check_references(("steps", index, *relative), source, None, upstream | {step_id}, expression=False)
        when = step.get("when")
        if isinstance(when, str):
            if is_template(when):
                self.error(("steps", index, "when"), "`when` is an expression, not a template",
                           "Remove the {{ and }}: write `when: inputs.amount > 100`.")
            else:
                self.check_references(("steps", index, "when"), when, step_id, upstream, expression=True)

    def check_references(self, path: Path, source: str, step_id, upstream: set[str], *, expression: bool) -> None:
        try:
            references = template_references(source, expression=expression)
        except TemplateSyntaxError as exc:
            example = "inputs.amount > 100" if expression else "{{ inputs.period }}"
            self.error(path, f"cannot read this {'condition' if expression else 'template'}: {exc.message}",
                       f"Check the brackets, quotes and operators; for example `{example}`.")
            return
        for problem in limit_problems(source, expression=expression):
            line = f" (line {problem.line} of the template)" if "\n" in source.strip() else ""
            self.error(path, f"this {'condition' if expression else 'template'} {problem.message}{line}", problem.hint)
        for reference in references:
            root, name = reference.root, reference.name
            if root == "run" or (root in ("inputs", "steps") and name is None) or root in _TEMPLATE_GLOBALS:
                continue
            if root == "inputs" and name not in self.input_names:
                declared = ", ".join(sorted(self.input_names)) or "none yet"
                self.error(path, f"`inputs.{name}` is not a declared input",
                           _did_you_mean(name, self.input_names, f"Declare it under `inputs:` (declared: {declared})."))
            elif root == "steps" and name == step_id:
                self.error(path, f"step `{name}` cannot read its own output", "Read an upstream step's output instead.")
            elif root == "steps" and name not in self.step_ids:
                self.error(path, f"`steps.{name}` is not a step in this workflow",
                           _did_you_mean(name, self.step_ids, "Use the id of a step defined under `steps`."))
            elif root == "steps" and name not in upstream:
                self.error(path, f"step `{name}` has not run yet when `{step_id}` starts",
                           f"Add `{name}` to this step's `needs` so its output exists.")
            elif root not in ("inputs", "steps"):
                self.error(path, f"`{root}` is not something a template can read",
                           "Read `inputs.<name>`, `steps.<id>.output` or `run`.")
        self.check_decision_reads(path, source, expression=expression)

    def check_decision_reads(self, path: Path, source: str, *, expression: bool) -> None:
        for step_id, compared in decision_reads(source, expression=expression):
            if step_id not in self.step_ids:
                continue  # reported as an unknown step
            outcomes = self.outcomes.get(step_id)
            if outcomes is None:
                self.error(path, f"step `{step_id}` has no decision: it does not wait for approval",
                           f"Give `{step_id}` an `approval`, or read `steps.{step_id}.output` instead.")
                continue
            for value in compared:
                if value not in outcomes:
                    listed = ", ".join(outcomes)
                    self.error(path, f"step `{step_id}` never decides `{value}`: its decisions are {listed}",
                               _did_you_mean(value, outcomes, f"Compare with one of: {listed}."))

    def check_approvals(self) -> None:
        wanted: list[tuple[Path, str, int | None]] = []
        for index, step in self.steps:
            approval = step.get("approval")
            path = ("steps", index, "approval")
            if isinstance(approval, str):
                wanted.append((path, approval, 1))
            elif isinstance(approval, dict):
                wanted += self.approver_sets(path, approval, also=("stages",))
                for position, stage in enumerate(_list(approval.get("stages"))):
                    if isinstance(stage, dict):
                        wanted += self.approver_sets((*path, "stages", position), stage)
                if isinstance(approval.get("escalate_to"), str):
                    wanted.append(((*path, "escalate_to"), approval["escalate_to"], None))
                elif approval.get("on_expiry") == "escalate":
                    self.error((*path, "on_expiry"), "there is no group to escalate to",
                               "Add `escalate_to:` with an approver group, or use `on_expiry: reject`.")
                self.check_gate(index, step, approval)
                self.check_reminders(index, approval)
        if not wanted:
            return
        from apps.accounts.models import ApproverGroup

        sizes = dict(ApproverGroup.objects.filter(slug__in={slug for _, slug, _ in wanted})
                     .annotate(size=Count("members")).values_list("slug", "size"))
        for path, slug, quorum in wanted:
            if slug not in sizes:
                self.error(path, f"there is no approver group `{slug}`",
                           "Use the slug of an existing approver group; a platform admin can create one.")
            elif quorum is not None and quorum > sizes[slug]:
                self.error(path, f"needs {quorum} approvals but group `{slug}` has {sizes[slug]} members",
                           "Lower `quorum`, or ask a platform admin to add people to the group.")

    def approver_sets(self, path: Path, block: dict, also: tuple[str, ...] = ()) -> list[tuple[Path, str, int | None]]:
        """(where, group slug, quorum) of each group `block` names through group, any_of or all_of."""
        ways = [key for key in ("group", "any_of", "all_of", *also) if key in block]
        if len(ways) > 1:
            self.error((*path, ways[1]), f"`{ways[0]}` and `{ways[1]}` both say who decides",
                       "Keep one: `group` (with `quorum`), `any_of` or `all_of` a list of groups, or `stages` in order.",
                       at_key=True)
        wanted = []
        if isinstance(block.get("group"), str):
            quorum = block.get("quorum", 1)
            wanted.append(((*path, "group"), block["group"], quorum if isinstance(quorum, int) else None))
        for key in ("any_of", "all_of"):
            for position, entry in enumerate(_list(block.get(key))):
                if isinstance(entry, str):
                    wanted.append(((*path, key, position), entry, 1))
                elif isinstance(entry, dict) and isinstance(entry.get("group"), str):
                    quorum = entry.get("quorum", 1)
                    wanted.append(((*path, key, position, "group"), entry["group"],
                                   quorum if isinstance(quorum, int) else None))
        return wanted

    def check_gate(self, index: int, step: dict[str, Any], approval: dict[str, Any]) -> None:
        """The form, the options and auto-approval of a gate."""
        path = ("steps", index, "approval")
        options = [option for option in _list(approval.get("options")) if isinstance(option, str)]
        for position, option in enumerate(options):
            if option in _PLAIN_OUTCOMES:
                self.error((*path, "options", position), f"`{option}` is not a name an option can have",
                           f"`{option}` is what the gate decides without options; name the option after what it "
                           f"does, such as `pay_now`.")
        form = approval.get("form")
        fields = form.get("properties") if isinstance(form, dict) else None
        fields = fields if isinstance(fields, dict) else {}
        required = [name for name in _list(form.get("required")) if isinstance(name, str)] \
            if isinstance(form, dict) else []
        for position, name in enumerate(required):
            if name not in fields:
                self.error((*path, "form", "required", position), f"`{name}` is not a field of this form",
                           _did_you_mean(name, fields, "List fields declared under `properties`."))
        for name, field in fields.items():
            if isinstance(field, dict) and "default" in field:
                problem = form_value_problem(field, field["default"])
                if problem:
                    self.error((*path, "form", "properties", name, "default"), f"the default {problem}",
                               "Change the default to match the field.")
        expression = approval.get("auto_approve")
        if not isinstance(expression, str):
            return
        where = (*path, "auto_approve")
        if is_template(expression):
            self.error(where, "`auto_approve` is a condition, not a template",
                       "Remove the {{ and }}: write `auto_approve: inputs.amount < 1000`.")
            return
        step_id = step.get("id")
        upstream = self.upstream_of(step_id) if isinstance(step_id, str) else set()
        self.check_references(where, expression, step_id, upstream, expression=True)
        if options:
            self.error(where, "an automatic approval cannot choose between `options`",
                       "Remove `auto_approve`, or remove `options` so the gate decides approved or rejected.")
        unfilled = [name for name in required if name in fields and "default" not in (fields[name] or {})]
        if unfilled:
            self.error(where, "an automatic approval cannot fill in " + ", ".join(f"`{n}`" for n in unfilled),
                       "Give those form fields a `default`, or remove `auto_approve`.")
        forbidden = _auto_approval_forbidden(step.get("type"))
        if forbidden:
            self.error(where, f"step type `{step.get('type')}` may not be approved automatically: {forbidden}",
                       "Remove `auto_approve`: a person decides steps of this type (set by a platform admin).")

    def check_reminders(self, index: int, approval: dict) -> None:
        remind = approval.get("remind")
        if not isinstance(remind, list) or not remind:
            return
        timeout = approval.get("timeout")
        if timeout is None:
            self.error(("steps", index, "approval", "remind"), "reminders come before the approval expires, and it "
                       "never does", "Add `timeout:` to the approval, or remove `remind`.")
            return
        if not _is_duration(timeout):
            return
        for position, before in enumerate(remind):
            if _is_duration(before) and parse_duration(before) >= parse_duration(timeout):
                self.error(("steps", index, "approval", "remind", position),
                           f"`{before}` before expiry is not after the request opens (timeout `{timeout}`)",
                           "Remind a shorter time before expiry than the timeout, such as `10m`.")

    def check_triggers(self) -> None:
        for index, trigger in enumerate(_list(self.data.get("triggers"))):
            if not isinstance(trigger, dict):
                continue
            schedule = trigger.get("schedule")
            if isinstance(schedule, dict):
                cron = schedule.get("cron")
                if isinstance(cron, str) and not croniter.is_valid(cron):
                    self.error(("triggers", index, "schedule", "cron"), f"`{cron}` is not a cron expression",
                               'Write five fields: minute hour day-of-month month day-of-week, such as "0 2 * * 1-5".')
                self.check_timezone(("triggers", index, "schedule", "timezone"), schedule.get("timezone"))
                if isinstance(schedule.get("calendar"), str):
                    self.check_calendar(("triggers", index, "schedule", "calendar"), schedule["calendar"])
            landing = trigger.get("file")
            if isinstance(landing, dict):
                for key in ("path", "marker"):
                    value = landing.get(key)
                    if isinstance(value, str) and (value.startswith("/") or ".." in value.split("/")):
                        self.error(("triggers", index, "file", key), f"`{value}` leaves the landing folder",
                                   'Write a path relative to the landing root, without "..", such as "usage/*.csv".')
            for kind in ("webhook", "queue"):
                body = trigger.get(kind)
                if isinstance(body, dict) and isinstance(body.get("batch"), dict):
                    self.check_batch(("triggers", index, kind, "batch"), body["batch"])
            after = trigger.get("after")
            if isinstance(after, dict) and after.get("workflow") == self.data.get("name"):
                self.error(("triggers", index, "after", "workflow"), "a workflow cannot start after itself",
                           "Name another workflow, or use a schedule trigger to repeat this one.")

    def check_batch(self, path: Path, batch: dict) -> None:
        # A zero wait would mean "no time limit", which surprises whoever wrote it; say so instead.
        wait = batch.get("max_wait")
        readable = type(wait) is int or (isinstance(wait, str) and re.fullmatch(DURATION_PATTERN, wait))
        if readable and parse_duration(wait) == 0:
            self.error((*path, "max_wait"), "a batch cannot wait 0 seconds",
                       "Give the longest time a batch may collect events, such as 10m, or remove `max_wait` "
                       "to close batches by `max_items` alone.")

    def check_calendar(self, path: Path, text: str) -> None:
        # Triggers own calendars; imported here so the spec module loads without them.
        from apps.triggers.models import BusinessCalendar
        from apps.triggers.schedules import CalendarRule, CalendarUnknown

        try:
            rule = CalendarRule.parse(text)
        except CalendarUnknown as exc:
            self.error(path, str(exc).split(":")[0], str(exc).partition(": ")[2].capitalize())
            return
        known = list(BusinessCalendar.objects.values_list("slug", flat=True))
        if rule.slug not in known:
            self.error(path, f"there is no business calendar `{rule.slug}`",
                       _did_you_mean(rule.slug, known, "Use a calendar a platform admin has set up, such as uk-banking."))

    def check_sla(self) -> None:
        sla = self.data.get("sla")
        if isinstance(sla, dict):
            self.check_timezone(("sla", "timezone"), sla.get("timezone"))

    def check_timezone(self, path: Path, name) -> None:
        if isinstance(name, str) and name not in _time_zones():
            self.error(path, f"`{name}` is not a time zone",
                       _did_you_mean(name, _time_zones(), 'Use an IANA time zone name, such as "Europe/Paris" or "UTC".'))

    def check_inputs(self) -> None:
        inputs = self.data.get("inputs")
        if not isinstance(inputs, dict):
            return
        for name, declared in inputs.items():
            if not isinstance(declared, dict) or "default" not in declared:
                continue
            if declared.get("required") is True:
                self.error(("inputs", name, "required"), f"input `{name}` is required yet has a default",
                           "Remove `required: true` (a default makes it optional), or remove the default.")
            problem = _input_problem(declared, declared["default"])
            if problem:
                self.error(("inputs", name, "default"), f"the default {problem}", "Change the default to match.")


def _is_duration(value) -> bool:
    """A duration the schema accepts (the semantic checks also see specs that failed it)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) and value >= 0 or isinstance(value, str) and re.match(DURATION_PATTERN, value) is not None


def _list(value) -> list:
    return value if isinstance(value, list) else []


def _needs(step: dict[str, Any]) -> list[str]:
    needs = step.get("needs")
    if isinstance(needs, list):
        return [n for n in needs if isinstance(n, str)]
    return needs_of(step) if isinstance(needs, str) else []


_PLAIN_OUTCOMES = ("approved", "rejected")


def _gated(step: dict[str, Any]) -> bool:
    if step.get("approval"):
        return True
    step_type = get_step_type(step["type"]) if isinstance(step.get("type"), str) else None
    return step_type is not None and step_type.risk == Risk.HIGH


def _outcomes(step: dict[str, Any]) -> list[str]:
    approval = step.get("approval")
    options = approval.get("options") if isinstance(approval, dict) else None
    named = [option for option in _list(options) if isinstance(option, str)]
    return [*(named or ["approved"]), "rejected"]


def _auto_approval_forbidden(type_name) -> str:
    """Why a platform admin forbade auto-approval for the step type ("" when they did not)."""
    if not isinstance(type_name, str):
        return ""
    # Approvals own the rule; imported here so the spec module loads without them.
    from apps.approvals.models import AutoApprovalBan

    return AutoApprovalBan.objects.filter(step_type=type_name).values_list("reason", flat=True).first() or ""


def _step_type_names() -> list[str]:
    return [step_type.name for step_type in all_step_types()]


def _params_validator(type_name: str) -> Draft202012Validator:
    return Draft202012Validator(get_step_type(type_name).params_schema)


@lru_cache(maxsize=1)
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


# --- Run inputs -------------------------------------------------------------------------------

_PYTHON_TYPES = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
                 "object": (dict,), "array": (list,)}


def _input_problem(declared: dict[str, Any], value) -> str | None:
    """Why `value` does not fit the declared input, or None when it does."""
    kind = declared.get("type")
    python_types = _PYTHON_TYPES.get(kind, ())
    # YAML and JSON true/false are Python ints too; a number input must not accept them.
    if not isinstance(value, python_types) or (isinstance(value, bool) and kind != "boolean"):
        return f"must be {_SCHEMA_TYPE_NAMES.get(kind, kind)}, not {_JSON_TYPE_NAMES.get(type(value), 'that')}"
    choices = declared.get("enum")
    if isinstance(choices, list) and value not in choices:
        return "must be one of: " + ", ".join(str(choice) for choice in choices)
    return None


_FORM_FORMATS = Draft202012Validator.FORMAT_CHECKER


def form_value_problem(field: dict[str, Any], value) -> str | None:
    """Why `value` does not fit a gate form's field, or None when it does."""
    errors = list(Draft202012Validator(field, format_checker=_FORM_FORMATS).iter_errors(value))
    if not errors:
        return None
    error = errors[0]
    kind = error.validator
    if kind == "type":
        expected = _SCHEMA_TYPE_NAMES.get(field.get("type"), field.get("type"))
        return f"must be {expected}, not {_JSON_TYPE_NAMES.get(type(value), 'that')}"
    if kind == "enum":
        return "must be one of: " + ", ".join(str(choice) for choice in field["enum"])
    if kind == "format":
        return "must be a date such as 2026-12-31"
    if kind in _BOUNDS:
        size, bound = _BOUNDS[kind]
        return f"is too {size}: it must be {bound} {error.validator_value}"
    if kind == "maxLength":
        return f"is too long: at most {error.validator_value} characters"
    return error.message


def form_errors(form: dict[str, Any], values: dict[str, Any]) -> dict[str, str]:
    """Field name -> what is wrong, for the values an approver gave a gate's form."""
    fields = form.get("properties") or {}
    errors = {name: "this is not a field of the form" for name in values if name not in fields}
    for name, field in fields.items():
        value = values.get(name)
        if value is None or value == "":
            if name in (form.get("required") or ()):
                errors[name] = "is required"
            continue
        problem = form_value_problem(field, value)
        if problem:
            errors[name] = problem
    return errors


def validate_inputs(spec: dict[str, Any], provided: dict[str, Any]) -> tuple[dict[str, Any], list[SpecError]]:
    """The run's input values (defaults filled in) and the errors in `provided`, per input."""
    declared = spec.get("inputs", {})
    if not isinstance(provided, dict):
        return {}, [SpecError(None, None, "inputs", "inputs must be a mapping of names to values",
                              'Send an object such as {"period": "2026-11"}.')]
    errors = [SpecError(None, None, f"inputs.{name}", f"`{name}` is not an input of this workflow",
                        _did_you_mean(name, declared, "Remove it; inputs: " + (", ".join(declared) or "none") + "."))
              for name in provided if name not in declared]
    values: dict[str, Any] = {}
    for name, definition in declared.items():
        if name not in provided:
            if definition["required"]:
                errors.append(SpecError(None, None, f"inputs.{name}", f"`{name}` is required",
                                        f"Give a value for `{name}`: {definition['description'] or definition['type']}."))
            else:
                values[name] = definition["default"]
            continue
        problem = _input_problem(definition, provided[name])
        if problem:
            errors.append(SpecError(None, None, f"inputs.{name}", f"`{name}` {problem}", "Change the value to match."))
        else:
            values[name] = provided[name]
    return values, errors
