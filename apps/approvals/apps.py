"""The approvals app: approval gates, failure checkpoints, decisions and the inbox."""

from django.apps import AppConfig

from apps.beat import schedule_every

EXPIRY_TASK_NAME = "flowdeck: expire approval requests"
EXPIRY_INTERVAL_SECONDS = 30


class ApprovalsConfig(AppConfig):
    name = "apps.approvals"
    label = "approvals"
    verbose_name = "Approvals"

    def ready(self) -> None:
        from apps.approvals import receivers
        from apps.runs import signals

        signals.step_waiting_approval.connect(receivers.on_step_waiting_approval,
                                              dispatch_uid="approvals.open_gate")
        signals.step_failed.connect(receivers.on_step_failed, dispatch_uid="approvals.open_checkpoint")
        signals.run_state_changed.connect(receivers.on_run_state_changed, dispatch_uid="approvals.withdraw_stale")
        signals.runs_purging.connect(receivers.on_runs_purging, dispatch_uid="approvals.purge_requests")
        schedule_every(self, name=EXPIRY_TASK_NAME, task="flowdeck.approvals.expire_approvals",
                       seconds=EXPIRY_INTERVAL_SECONDS,
                       description="Escalates or rejects approval requests past their timeout and sends expiry "
                                   "reminders.")
