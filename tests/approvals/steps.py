"""A step type with real parameter and output schemas, for checking edited parameters on retry
and the output typed in when it is skipped."""

from apps.catalog.registry import StepError, step_type

STRICT_SCHEMA = {
    "type": "object",
    "required": ["succeed"],
    "additionalProperties": False,
    "properties": {"succeed": {"type": "boolean"}, "rows": {"type": "integer", "minimum": 0}},
}


OUTPUT_SCHEMA = {"type": "object", "properties": {"rows": {"type": "integer", "minimum": 0}}}


@step_type("test.approvals.strict", params_schema=STRICT_SCHEMA, output_schema=OUTPUT_SCHEMA,
           summary="Fails unless `succeed` is true.")
def strict(ctx):
    if not ctx.params["succeed"]:
        raise StepError("upstream ledger not ready (batch 4411)")
    return {"rows": ctx.params.get("rows", 0)}
