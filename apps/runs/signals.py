"""Signals the engine sends so other apps react without the engine importing them.

Except run_ended, they are sent inside the engine's transaction, so a receiver's own writes (an approval request,
an incident) commit or roll back with the state change they describe. Receivers must be quick
and must defer slow I/O (mail, webhooks) with `transaction.on_commit`.

- run_state_changed(sender=Run, run, before, after, actor): the run's state went from `before` to `after`
- step_failed(sender=StepRun, step_run, attempt, run, error_type, error_message, compensation)
  sent when a step (or its compensation) has failed for good, after the run's state was decided
  (`run.state` is `paused` when a person must decide); `attempt` is the last StepAttempt, or
  None when the step failed before any attempt (a template error, a rejected approval).
- run_ended(sender=Run, run) is sent AFTER the transaction that ended the run commits, outside
  the run's lock, for work that need not be atomic with the end and is idempotent (SLA
  settlement, anomaly history, downstream starts, the next backfill slot). Each receiver runs in
  its own transaction; one that fails is logged and does not stop the others. A receiver that
  must not be lost to a crash right after the commit has a periodic catch-up of its own.
- runs_purging(sender=Run, run_ids) is sent inside each retention batch's transaction, before
  those finished runs are removed (apps.runs.retention): each app removes or detaches its own
  rows about them.
- step_waiting_approval(sender=StepRun, step_run, run, approval) where `approval` is the spec's
  approval block, or None when the gate comes from a high-risk step type.
"""

from django.dispatch import Signal

run_state_changed = Signal()
run_ended = Signal()
runs_purging = Signal()
step_failed = Signal()
step_waiting_approval = Signal()
