"""Approval requests (risky-step gates and failure checkpoints), the decisions people take on
them, risk waivers, and the webhook channels notifications go to.

A request is opened by the engine's signals (see `apps.approvals.receivers`) and changed only by
`apps.approvals.services`: a gate waits for a quorum of distinct approvers of its group before
its step runs; a checkpoint waits for one operator's choice after a step failed for good.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone


class RequestKind(models.TextChoices):
    GATE = "gate", "Approval gate"
    CHECKPOINT = "checkpoint", "Failure checkpoint"


class RequestState(models.TextChoices):
    PENDING = "pending", "Waiting for a decision"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired (rejected)"
    DECIDED = "decided", "Decided"
    WAIVED = "waived", "Waived (no approval needed)"
    AUTO_APPROVED = "auto_approved", "Approved automatically"
    KEPT = "kept", "Approval kept from the earlier run"
    WITHDRAWN = "withdrawn", "Withdrawn (the run moved on)"


class OnExpiry(models.TextChoices):
    REJECT = "reject", "Reject"
    ESCALATE = "escalate", "Escalate"


class Verdict(models.TextChoices):
    """What one person decided. Gates take approve/reject; checkpoints take the four choices."""

    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"
    RETRY = "retry", "Retry"
    SKIP = "skip", "Skip"
    COMPENSATE = "compensate", "Compensate and abort"
    ABORT = "abort", "Abort"


CHECKPOINT_CHOICES = (Verdict.RETRY, Verdict.SKIP, Verdict.COMPENSATE, Verdict.ABORT)


class ReasonCode(models.TextChoices):
    TRANSIENT = "transient", "Transient failure (network, timeout, busy service)"
    DATA_FIXED = "data_fixed", "The data was fixed upstream"
    PARAMS_FIXED = "params_fixed", "Parameters or configuration corrected"
    KNOWN_ISSUE = "known_issue", "Known issue, safe to continue"
    NOT_NEEDED = "not_needed", "The step is not needed this time"
    UNRECOVERABLE = "unrecoverable", "Cannot be recovered; stop the run"
    OTHER = "other", "Other (explained in the comment)"


class ApprovalRequest(models.Model):
    kind = models.CharField(max_length=16, choices=RequestKind.choices)
    state = models.CharField(max_length=16, choices=RequestState.choices, default=RequestState.PENDING)
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="approval_requests")
    run = models.ForeignKey("runs.Run", on_delete=models.CASCADE, related_name="approval_requests")
    step_run = models.ForeignKey("runs.StepRun", on_delete=models.CASCADE, related_name="approval_requests")
    # Gates: who decides (None: any approver of the team, for a high-risk type without `approval`).
    group = models.ForeignKey("accounts.ApproverGroup", null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="approval_requests")
    quorum = models.PositiveSmallIntegerField(default=1, help_text="Distinct people who must approve.")
    # Gates: the sign-off of a chain this request is (0: the first); the next opens once it is approved.
    stage = models.PositiveSmallIntegerField(default=0)
    expires_at = models.DateTimeField(null=True, blank=True)
    timeout_seconds = models.PositiveIntegerField(null=True, blank=True)
    on_expiry = models.CharField(max_length=16, choices=OnExpiry.choices, default=OnExpiry.REJECT)
    escalate_to = models.ForeignKey("accounts.ApproverGroup", null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    escalated_at = models.DateTimeField(null=True, blank=True)
    warn_at = models.DateTimeField(null=True, blank=True, help_text="When to remind that expiry is near.")
    warned_at = models.DateTimeField(null=True, blank=True)
    # The earliest of expiry and the run's SLA deadline: the inbox sorts on it.
    due_at = models.DateTimeField(null=True, blank=True)
    risky = models.BooleanField(default=False, help_text="The step is gated or of a high-risk type.")
    # Checkpoints: the failure being decided on.
    error_type = models.CharField(max_length=200, blank=True)
    error_message = models.TextField(blank=True)
    error_signature = models.CharField(max_length=500, blank=True, db_index=True)
    outcome = models.CharField(max_length=16, choices=Verdict.choices, blank=True,
                               help_text="The verdict that closed the request.")
    # Gates: sha256 of the version and the parameters as rendered when the gate opened, so a rerun
    # can tell an unchanged step (its approval kept) from a changed one (asked again).
    params_digest = models.CharField(max_length=64, blank=True)
    kept_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                  help_text="The approved request of the earlier run this one keeps.")
    created_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["state", "due_at"]),
            models.Index(fields=["state", "expires_at"]),
            models.Index(fields=["team", "state"]),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} for {self.step_run.step_id} ({self.state})"

    @property
    def is_open(self) -> bool:
        return self.state == RequestState.PENDING


class RequestCause(models.Model):
    """A person who caused a request and therefore may not decide it (separation of duties)."""

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="causes")
    person = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=200)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["request", "person"], name="unique_cause_per_person")]

    def __str__(self) -> str:
        return f"{self.person} {self.reason}"


class Decision(models.Model):
    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="decisions")
    person = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="approval_decisions")
    verdict = models.CharField(max_length=16, choices=Verdict.choices)
    reason_code = models.CharField(max_length=20, choices=ReasonCode.choices, blank=True)
    comment = models.TextField(blank=True)
    params_override = models.JSONField(null=True, blank=True, help_text="Retry: the parameters replaced.")
    skip_output = models.JSONField(null=True, blank=True, help_text="Skip: the output downstream steps see.")
    option = models.CharField(max_length=64, blank=True, help_text="Gate: the named option approved.")
    form_values = models.JSONField(null=True, blank=True, help_text="Gate: what the approver filled in.")
    self_approval = models.BooleanField(default=False, help_text="Allowed by the group despite causing it.")
    # A delegate decides in their own name for the person who delegated to them (see delegation.py).
    on_behalf_of = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="+", help_text="Whose delegated authority this decision used.")
    # Checkpoints: what the assistant showed the person (apps.knowledge.decision_record says what is
    # kept and what "followed" means), for audit and for the knowledge page's followed rate.
    suggestions_shown = models.JSONField(null=True, blank=True, help_text="The ranking shown at the decision.")
    followed_suggestion = models.BooleanField(null=True, blank=True,
                                              help_text="Whether the decision followed it (empty: cannot be told).")
    decided_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["decided_at", "id"]
        # Quorum counts distinct people: one decision per person per request, and one per delegator.
        constraints = [
            models.UniqueConstraint(fields=["request", "person"], name="one_decision_per_person"),
            models.UniqueConstraint(fields=["request", "on_behalf_of"], condition=models.Q(on_behalf_of__isnull=False),
                                    name="one_decision_per_delegator"),
        ]

    def __str__(self) -> str:
        return f"{self.person} {self.verdict} on request {self.request_id}"


class RiskWaiver(models.Model):
    """A platform admin's waiver: steps of this high-risk type run without approval in this team.
    A step with its own `approval` block is gated regardless."""

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="risk_waivers")
    step_type = models.CharField(max_length=100)
    reason = models.TextField()
    granted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    granted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["team__name", "step_type"]
        constraints = [models.UniqueConstraint(fields=["team", "step_type"], name="unique_waiver_per_type")]

    def __str__(self) -> str:
        return f"{self.step_type} waived in {self.team}"


class AutoApprovalBan(models.Model):
    """A platform admin's rule: steps of this type are never approved by `auto_approve`; a person
    decides. The editor refuses such a spec, and a run asks a person anyway."""

    step_type = models.CharField(max_length=100, unique=True)
    reason = models.TextField()
    forbidden_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    forbidden_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["step_type"]

    def __str__(self) -> str:
        return f"no auto-approval for {self.step_type}"


class Delegation(models.Model):
    """While it holds, `delegate` may decide the requests `delegator` may decide, on their behalf
    (out of office). Kept in approvals: it widens who may decide a request, a rule whose one home
    is `approvals.services`; accounts only says who holds which role."""

    delegator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="delegations_given")
    delegate = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                 related_name="delegations_received")
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="+",
                             help_text="Empty: every team the delegator decides in.")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True, help_text="Ended early by a person.")

    class Meta:
        ordering = ["starts_at", "id"]
        indexes = [models.Index(fields=["delegate", "ends_at"]), models.Index(fields=["delegator", "ends_at"])]
        constraints = [models.CheckConstraint(condition=models.Q(ends_at__gt=models.F("starts_at")),
                                              name="delegation_ends_after_it_starts")]

    def __str__(self) -> str:
        return f"{self.delegate} decides for {self.delegator} until {self.ends_at:%Y-%m-%d %H:%M}"

    @property
    def started(self) -> bool:
        return self.starts_at <= timezone.now()


class Reminder(models.Model):
    """One reminder a gate's `approval.remind` asked for, `before_seconds` ahead of its expiry;
    `sent_at` is set by the one beat run that sends it."""

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="reminders")
    before_seconds = models.PositiveIntegerField()
    remind_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["remind_at", "id"]
        indexes = [models.Index(fields=["sent_at", "remind_at"])]
        constraints = [models.UniqueConstraint(fields=["request", "before_seconds"], name="one_reminder_per_offset")]

    def __str__(self) -> str:
        return f"reminder of request {self.request_id} at {self.remind_at:%Y-%m-%d %H:%M}"


class DecisionLinkUse(models.Model):
    """A signed decision link that was used to decide: the link is refused from then on."""

    nonce = models.CharField(max_length=32, unique=True)
    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="+")
    person = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    used_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"link {self.nonce} used by {self.person} on request {self.request_id}"
