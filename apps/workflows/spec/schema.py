"""The published JSON Schema (Draft 2020-12) of the workflow spec language.

It checks shape only: which fields exist and their types. Meaning (dependencies, step types,
templates, cron expressions, approver groups) is checked by `validate.py` afterwards. Served at
GET /api/v1/workflows/schema so editors and CI can validate specs too.
"""

SCHEMA_ID = "https://flowdeck.dev/schemas/workflow-spec-1.json"

NAME_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
STEP_ID_PATTERN = r"^[a-z][a-z0-9_-]*$"
INPUT_NAME_PATTERN = r"^[a-z_][a-z0-9_]*$"
DURATION_PATTERN = r"^[0-9]+[smhd]$"
CLOCK_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
INPUT_TYPES = ["string", "integer", "number", "boolean", "object", "array"]
ON_FAILURE = ["fail", "continue", "pause"]
BACKOFF = ["fixed", "exponential"]
RETRY_WHEN = ["always", "transient"]
CATCH_UP = ["skip", "once", "each"]
AFTER_STATUS = ["succeeded", "failed", "finished"]
ON_REJECT = ["fail", "skip", "continue"]
OPTION_PATTERN = r"^[a-z][a-z0-9_]*$"
FORM_FIELD_TYPES = ["string", "number", "integer", "boolean"]
# Who decides, written one way: one group, any one of several, or all of several.
_ONE_WAY_OF_DECIDING = [{"required": ["group"]}, {"required": ["any_of"]}, {"required": ["all_of"]}]

SPEC_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_ID,
    "title": "Flowdeck workflow spec",
    "type": "object",
    "required": ["name", "steps"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": NAME_PATTERN, "maxLength": 100,
                 "description": "Lower-case letters, digits and dashes; unique within the team."},
        "description": {"type": "string"},
        "inputs": {
            "type": "object",
            "propertyNames": {"pattern": INPUT_NAME_PATTERN},
            "additionalProperties": {"$ref": "#/$defs/input"},
        },
        "triggers": {"type": "array", "items": {"$ref": "#/$defs/trigger"}},
        "sla": {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "properties": {
                "max_duration": {"$ref": "#/$defs/duration"},
                "finish_by": {"type": "string", "pattern": CLOCK_PATTERN},
                "timezone": {"type": "string"},
            },
        },
        "concurrency": {"type": "integer", "minimum": 1},
        "defaults": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "retries": {"$ref": "#/$defs/retries"},
                "timeout": {"$ref": "#/$defs/duration"},
                "on_failure": {"enum": ON_FAILURE},
                "queue": {"type": "string", "minLength": 1},
            },
        },
        "steps": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/step"}},
    },
    "$defs": {
        "duration": {
            "description": 'Whole seconds, or a number with a unit: "30s", "5m", "2h", "1d".',
            "type": ["integer", "string"],
            "minimum": 0,
            "pattern": DURATION_PATTERN,
        },
        "input": {
            "type": "object",
            "additionalProperties": False,
            "required": ["type"],
            "properties": {
                "type": {"enum": INPUT_TYPES},
                "required": {"type": "boolean"},
                "default": {},
                "description": {"type": "string"},
                "enum": {"type": "array", "minItems": 1},
            },
        },
        "retries": {
            "description": "A count, or the full form with backoff and delays.",
            "type": ["integer", "object"],
            "minimum": 0,
            "maximum": 20,
            "additionalProperties": False,
            "properties": {
                "count": {"type": "integer", "minimum": 0, "maximum": 20},
                "backoff": {"enum": BACKOFF},
                "delay": {"$ref": "#/$defs/duration"},
                "max_delay": {"$ref": "#/$defs/duration"},
                "jitter": {"type": "boolean"},
                "when": {"enum": RETRY_WHEN,
                         "description": "always: any failure that is not permanent; transient: only network, "
                                        "outage, rate-limit, lock and capacity failures."},
            },
        },
        "step": {
            "type": "object",
            "required": ["id", "type"],
            "additionalProperties": False,
            "properties": {
                "id": {"type": "string", "pattern": STEP_ID_PATTERN, "maxLength": 64},
                "type": {"type": "string", "minLength": 1},
                "with": {"type": "object"},
                "needs": {"type": ["string", "array"], "items": {"type": "string"}},
                "when": {"type": "string", "minLength": 1},
                "retries": {"$ref": "#/$defs/retries"},
                "timeout": {"$ref": "#/$defs/duration"},
                "on_failure": {"enum": ON_FAILURE},
                "queue": {"type": "string", "minLength": 1},
                "approval": {
                    "description": "An approver group's slug, or the full form.",
                    "type": ["string", "object"],
                    "if": {"type": "object"},
                    "then": {"anyOf": [*_ONE_WAY_OF_DECIDING, {"required": ["stages"]}]},
                    "additionalProperties": False,
                    "properties": {
                        "group": {"type": "string", "minLength": 1},
                        "quorum": {"type": "integer", "minimum": 1},
                        "any_of": {"$ref": "#/$defs/approver_sets"},
                        "all_of": {"$ref": "#/$defs/approver_sets"},
                        "stages": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/approval_stage"},
                                   "description": "Sign-offs decided in order: the next opens once one is approved."},
                        "timeout": {"$ref": "#/$defs/duration"},
                        "escalate_to": {"type": "string", "minLength": 1},
                        "on_expiry": {"enum": ["reject", "escalate"]},
                        "form": {"$ref": "#/$defs/gate_form"},
                        "on_reject": {"enum": ON_REJECT},
                        "options": {"type": "array", "minItems": 1, "uniqueItems": True,
                                    "items": {"type": "string", "pattern": OPTION_PATTERN},
                                    "description": "Named ways to approve, read downstream as `steps.<id>.decision`."},
                        "auto_approve": {"type": "string", "minLength": 1,
                                         "description": "A condition; when it holds nobody needs to decide."},
                        "reapprove": {"enum": ["on_change", "always"],
                                      "description": "In a rerun: ask again only when the step's rendered "
                                                     "parameters or version changed (on_change), or always."},
                        "remind": {"description": "Remind the deciders this long before the approval expires.",
                                   "type": "array", "minItems": 1, "maxItems": 5,
                                   "items": {"$ref": "#/$defs/duration"}},
                    },
                },
                "compensate": {
                    "type": "object",
                    "required": ["type"],
                    "additionalProperties": False,
                    "properties": {"type": {"type": "string", "minLength": 1}, "with": {"type": "object"}},
                },
            },
        },
        "approver_set": {
            "description": "A group's slug, or a group with its quorum.",
            "type": ["string", "object"],
            "required": ["group"],
            "additionalProperties": False,
            "properties": {"group": {"type": "string", "minLength": 1}, "quorum": {"type": "integer", "minimum": 1}},
        },
        "approver_sets": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/approver_set"}},
        "approval_stage": {
            "description": "One sign-off: a group (with its quorum), or any_of / all_of several.",
            "type": "object",
            "anyOf": _ONE_WAY_OF_DECIDING,
            "additionalProperties": False,
            "properties": {
                "group": {"type": "string", "minLength": 1},
                "quorum": {"type": "integer", "minimum": 1},
                "any_of": {"$ref": "#/$defs/approver_sets"},
                "all_of": {"$ref": "#/$defs/approver_sets"},
            },
        },
        "gate_form": {
            "description": "What the approver fills in: a small JSON Schema of an object.",
            "type": "object",
            "required": ["properties"],
            "additionalProperties": False,
            "properties": {
                "type": {"const": "object"},
                "required": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
                "properties": {
                    "type": "object",
                    "minProperties": 1,
                    "propertyNames": {"pattern": INPUT_NAME_PATTERN},
                    "additionalProperties": {"$ref": "#/$defs/form_field"},
                },
            },
        },
        "form_field": {
            "type": "object",
            "required": ["type"],
            "additionalProperties": False,
            "properties": {
                "type": {"enum": FORM_FIELD_TYPES},
                "format": {"const": "date"},
                "enum": {"type": "array", "minItems": 1},
                "default": {},
                "title": {"type": "string"},
                "description": {"type": "string"},
                "minimum": {"type": "number"},
                "maximum": {"type": "number"},
                "maxLength": {"type": "integer", "minimum": 1},
            },
        },
        "batch": {
            "description": "Micro-batching: start one run per `max_items` events, or `max_wait` after a batch's "
                           "first event, whichever comes first.",
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "properties": {"max_items": {"type": "integer", "minimum": 1}, "max_wait": {"$ref": "#/$defs/duration"}},
        },
        "trigger": {
            "description": "Exactly one of schedule, webhook, file, queue or after.",
            "type": "object",
            "minProperties": 1,
            "maxProperties": 1,
            "additionalProperties": False,
            "properties": {
                "schedule": {
                    "type": "object",
                    "required": ["cron"],
                    "additionalProperties": False,
                    "properties": {
                        "cron": {"type": "string"},
                        "timezone": {"type": "string"},
                        "calendar": {"type": "string"},
                        "catch_up": {"enum": CATCH_UP},
                    },
                },
                "webhook": {
                    "type": ["object", "null"],
                    "additionalProperties": False,
                    "properties": {"batch": {"$ref": "#/$defs/batch"}},
                },
                "file": {
                    "type": "object",
                    "required": ["path"],
                    "additionalProperties": False,
                    "properties": {"path": {"type": "string", "minLength": 1}, "marker": {"type": "string"}},
                },
                "queue": {
                    "description": "One run per message on `queue` of catalog connection `connection`: a RabbitMQ "
                                   "queue, or on a redis connection a Redis stream whose entries' fields are the "
                                   "inputs.",
                    "type": "object",
                    "required": ["connection", "queue"],
                    "additionalProperties": False,
                    "properties": {
                        "connection": {"type": "string", "minLength": 1},
                        "queue": {"type": "string", "minLength": 1},
                        "batch": {"$ref": "#/$defs/batch"},
                    },
                },
                "after": {
                    "type": "object",
                    "required": ["workflow"],
                    "additionalProperties": False,
                    "properties": {"workflow": {"type": "string", "pattern": NAME_PATTERN},
                                   "status": {"enum": AFTER_STATUS}},
                },
            },
        },
    },
}
