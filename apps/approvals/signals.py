"""Signals the approvals app sends, inside the transaction of the decision they describe.

- checkpoint_decided(sender=ApprovalRequest, request, choice, actor, reason, comment): a person
  decided a failure checkpoint (`choice`: retry, skip, compensate or abort; `reason`: the reason
  code's label), sent before the engine carries the decision out.
"""

from django.dispatch import Signal

checkpoint_decided = Signal()
