"""A step type with a real parameter schema, for checking edited parameters on retry."""

from apps.catalog.registry import StepError, step_type

STRICT_SCHEMA = {
    "type": "object",
    "required": ["succeed"],
    "additionalProperties": False,
    "properties": {"succeed": {"type": "boolean"}, "rows": {"type": "integer", "minimum": 0}},
}


@step_type("test.approvals.strict", params_schema=STRICT_SCHEMA, summary="Fails unless `succeed` is true.")
def strict(ctx):
    if not ctx.params["succeed"]:
        raise StepError("upstream ledger not ready (batch 4411)")
    return {"rows": ctx.params.get("rows", 0)}
