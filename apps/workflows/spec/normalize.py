"""The normalized spec: the contract between the spec language and the engine.

`normalize(document)` turns a schema-valid YAML document into this shape, filling defaults,
so the engine never has to know about shorthand forms. Durations are whole seconds.

    {
      "name": "payroll-run",
      "description": "",
      "inputs": {"period": {"type": "string", "required": True, "default": None, "description": ""}},
      "triggers": [ {"schedule": {...}} | {"webhook": {...}} | {"file": {...}} | {"queue": {...}} | {"after": {...}} ],
      "sla": {"max_duration": 3600 | None, "finish_by": "06:00" | None, "timezone": "UTC"} | None,
      "concurrency": 1 | None,            # max runs of this workflow at once; None = unlimited
      "steps": [                           # in the order written
        {
          "id": "extract",
          "type": "http.request",
          "with": {...},                   # parameters, may hold {{ templates }}
          "needs": ["other-step-id"],
          "when": "inputs.amount > 100" | None,    # a condition expression, no braces
          "retries": {"count": 0, "backoff": "fixed" | "exponential", "delay": 5, "max_delay": 300, "jitter": True},
          "timeout": 300 | None,           # None: the step type's default
          "on_failure": "fail" | "continue" | "pause",
          "queue": None | "name",          # None: the step type's queue
          "approval": None | {"group": "billing-approvers", "quorum": 1, "timeout": 86400 | None,
                              "escalate_to": "group" | None, "on_expiry": "reject" | "escalate"},
          "compensate": None | {"type": "http.request", "with": {...}},
        },
      ],
    }

`defaults` in the YAML (retries, timeout, on_failure, queue) are merged into every step that
does not set its own; they do not appear in the normalized form.
"""
