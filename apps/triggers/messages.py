"""What one queue message becomes, whoever delivers it (a consumer, or a dead letter's replay): a
run started (or a batch event), a repeat of a key already in the ledger, or a refusal noted on
the trigger event."""

from __future__ import annotations

import json

from apps.catalog.models import ConnectionKind
from apps.triggers import services
from apps.triggers.models import TriggerBinding, TriggerSource


def record_message(binding: TriggerBinding, key: str, payload: dict, inputs: dict | None = None) -> str:
    """Start the run of one message (or add it to a batch), or note why its inputs do not fit.
    `inputs` defaults to the payload. Returns "started", "repeat" or "refused"."""
    workflow = binding.workflow
    batch = binding.config.get("batch")
    if batch:
        _, created = services.add_to_batch(workflow, TriggerSource.QUEUE, key, payload, batch)
        return "started" if created else "repeat"
    outcome = services.start_or_note(workflow, TriggerSource.QUEUE, key, payload=payload,
                                     inputs=payload if inputs is None else inputs)
    if outcome.event.error and outcome.event.run_id is None:
        return "refused"
    return "started" if outcome.created else "repeat"


def refuse_message(binding: TriggerBinding, key: str, reason: str) -> str:
    services.note_refused(binding.workflow, TriggerSource.QUEUE, key, reason)
    return "refused"


def record_body(binding: TriggerBinding, source: str, key: str, payload: dict | None) -> str:
    """Record one message's body (a Redis entry's fields, or a RabbitMQ body parsed as JSON)."""
    if source == ConnectionKind.REDIS:
        if payload is None:
            return refuse_message(binding, key, "The entry's fields are not UTF-8 text; write each input as a "
                                                "text field, numbers and lists as JSON text.")
        declared = binding.workflow.current_version.plan.inputs
        return record_message(binding, key, payload, stream_inputs(declared, payload))
    if payload is None:
        return refuse_message(binding, key, "The message body is not a JSON object; publish the workflow's "
                                            "inputs as a JSON object.")
    return record_message(binding, key, payload)


def stream_inputs(declared: dict, fields: dict[str, str]) -> dict:
    """A stream entry's fields as run inputs. Fields are text, so a field for an input declared
    as a number, boolean, list or mapping is read as JSON (`42`, `true`, `["a"]`); a value that
    is not JSON is left as text for the input check to refuse with its usual message. `declared`
    is the version's plan's inputs."""
    inputs = {}
    for name, text in fields.items():
        if declared.get(name, {}).get("type", "string") == "string":
            inputs[name] = text
            continue
        try:
            inputs[name] = json.loads(text)
        except ValueError:
            inputs[name] = text
    return inputs
