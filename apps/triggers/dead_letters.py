"""Queue messages whose handling keeps failing: counted per delivery, set aside as a DeadLetter
after FLOWDECK_TRIGGER_MAX_DELIVERIES deliveries, and replayed by an operator.

A message is counted only when it comes back (RabbitMQ marks it redelivered; a Redis stream entry
is read again from the group's pending list) or when its handling raised, so a healthy queue
writes nothing here. Setting a message aside acknowledges it on the broker (the caller does that
after this module has committed the DeadLetter), records an audit event and raises one
exception-only alert per workflow while that alert is open.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from apps.audit.log import record
from apps.logging import get_logger
from apps.monitoring.models import AlertKind
from apps.monitoring.services import raise_alert
from apps.triggers import messages
from apps.triggers.models import DeadLetter, DeadLetterState, QueueDelivery, TriggerBinding, TriggerKind
from apps.triggers.services import TriggerError

logger = get_logger("flowdeck.triggers")


def count_delivery(workflow, message_key: str) -> int:
    """Count one more delivery of a message that came back; returns how many there have been,
    this one included (the first, not counted here, is 1)."""
    with transaction.atomic():
        row, created = QueueDelivery.objects.select_for_update().get_or_create(
            workflow=workflow, message_key=message_key, defaults={"deliveries": 2})
        if not created:
            row.deliveries += 1
            row.updated_at = timezone.now()
            row.save(update_fields=["deliveries", "updated_at"])
        return row.deliveries


def note_failure(workflow, message_key: str, error: str) -> None:
    QueueDelivery.objects.update_or_create(workflow=workflow, message_key=message_key,
                                           defaults={"last_error": error, "updated_at": timezone.now()})


def last_error(workflow, message_key: str) -> str:
    return QueueDelivery.objects.filter(workflow=workflow, message_key=message_key) \
        .values_list("last_error", flat=True).first() or ""


def settled(workflow, message_key: str) -> None:
    """A message that came back was recorded at last: forget its count."""
    QueueDelivery.objects.filter(workflow=workflow, message_key=message_key).delete()


def set_aside(binding: TriggerBinding, *, source: str, message_key: str, body: str, payload: dict | None,
              error: str, deliveries: int) -> DeadLetter:
    workflow = binding.workflow
    with transaction.atomic():
        letter = DeadLetter.objects.create(
            workflow=workflow, team_id=workflow.team_id, source=source, connection=binding.config["connection"],
            queue=binding.config["queue"], message_key=message_key, body=body, payload=payload, error=error,
            deliveries=deliveries)
        QueueDelivery.objects.filter(workflow=workflow, message_key=message_key).delete()
        record(None, "dead_letter.set_aside", letter, team=workflow.team,
               after={"queue": letter.queue, "message": message_key, "deliveries": deliveries, "error": error[:500]})
    raise_alert(team=workflow.team, kind=AlertKind.DEAD_LETTER, dedup_key=f"dead_letter:{workflow.pk}",
                workflow=workflow,
                title=f"{workflow.name}: a message on {letter.queue} failed {deliveries} times and was set aside",
                detail={"queue": letter.queue, "message": message_key, "error": error[:500],
                        "dead_letter": letter.pk, "replay": f"/triggers/workflows/{workflow.pk}/#dead-letters"})
    logger.warning("queue message set aside", workflow=str(workflow), queue=letter.queue, message=message_key,
                   deliveries=deliveries, error=error[:500])
    return letter


def replay(actor, letter_pk: int) -> DeadLetter:
    """Hand a set-aside message to the workflow's queue trigger again, as if just delivered (its
    key still finds a run already started for it). Raises TriggerError, leaving it set aside,
    when it fails again or the trigger is gone."""
    try:
        with transaction.atomic():
            letter = DeadLetter.objects.select_for_update().get(pk=letter_pk)
            if letter.state != DeadLetterState.SET_ASIDE:
                raise TriggerError(f"This message was already replayed at {letter.replayed_at:%Y-%m-%d %H:%M %Z} "
                                   f"({letter.replay_outcome}).")
            outcome = messages.record_body(_binding_of(letter), letter.source, letter.message_key, letter.payload)
            letter.state, letter.replayed_at, letter.replayed_by = DeadLetterState.REPLAYED, timezone.now(), actor
            letter.replay_outcome = outcome
            letter.save(update_fields=["state", "replayed_at", "replayed_by", "replay_outcome"])
            record(actor, "dead_letter.replayed", letter, team=letter.workflow.team, after={"outcome": outcome})
    except TriggerError:
        raise
    except Exception as exc:  # noqa: BLE001  (whatever made it fail before may still be there)
        raise TriggerError(f"Replaying failed again ({type(exc).__name__}: {exc}); the message stays set "
                           f"aside.") from exc
    return letter


def _binding_of(letter: DeadLetter) -> TriggerBinding:
    for binding in TriggerBinding.objects.filter(workflow=letter.workflow, kind=TriggerKind.QUEUE):
        if binding.config.get("connection") == letter.connection and binding.config.get("queue") == letter.queue:
            return binding
    raise TriggerError(f"{letter.workflow.name} no longer has a queue trigger on {letter.connection} "
                       f"{letter.queue}: nothing to replay the message into.")
