"""The `example.convert_amounts` step type: convert a small list of amounts to one currency.

It shows every part of the step type contract: a parameters schema (with defaults that Flowdeck
fills in), an output schema, the risk, idempotency, progress, records and datasets, and the two
kinds of failure (retryable and permanent).
"""

from decimal import ROUND_HALF_EVEN, Decimal

from apps.catalog.registry import PermanentStepError, Risk, StepContext, checked_params, step_type

NAME = "example.convert_amounts"
PROGRESS_EVERY = 100

PARAMS_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["amounts", "rates", "to"],
    "properties": {
        "amounts": {
            "type": "array", "maxItems": 10_000,
            "description": "The records: each an object with an `amount` (number or numeric text) and its "
                           "`currency`; other fields are kept as they are.",
            "items": {"type": "object", "required": ["amount", "currency"],
                      "properties": {"amount": {"type": ["number", "string"], "description": "The amount."},
                                     "currency": {"type": "string", "description": "Its ISO 4217 code."}}},
        },
        "rates": {"type": "object", "additionalProperties": {"type": "number", "exclusiveMinimum": 0},
                  "description": "How many units of `to` one unit of each currency is worth, e.g. {\"USD\": 0.92}."},
        "to": {"type": "string", "pattern": "^[A-Z]{3}$", "description": "The currency to convert to."},
        "decimals": {"type": "integer", "minimum": 0, "maximum": 8, "default": 2,
                     "description": "Decimal places of the converted amounts (rounded half to even)."},
        "dataset": {"type": "string",
                    "description": "Where the amounts came from (a URI such as s3://ledger/2026-11.json), noted as "
                                   "the step's input dataset for lineage."},
    },
}

OUTPUT_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["currency", "total", "converted", "rejected"],
    "properties": {
        "currency": {"type": "string"},
        "total": {"type": "string", "description": "The sum of the converted amounts, as exact decimal text."},
        "converted": {"type": "array", "items": {"type": "object"}},
        "rejected": {"type": "array", "items": {"type": "object", "required": ["index", "reason"]}},
    },
}


@step_type(
    NAME,
    params_schema=PARAMS_SCHEMA,
    output_schema=OUTPUT_SCHEMA,
    summary="Convert a list of amounts to one currency with the given rates (an example package's type).",
    doc="""Converts each amount to `to` with `rates` (the target currency itself converts at 1). An
amount whose currency has no rate, or that is not a number, is **rejected** with its reason;
the others are converted. Pure computation, so a repeated attempt gives the same output.

**Output:** `{"currency": "EUR", "total": "123.45", "converted": [{"amount": "10.00", "currency":
"EUR", ...}], "rejected": [{"index": 3, "reason": "no rate for JPY"}]}`.

**Errors:** parameters that break the schema, or every amount rejected: permanent.""",
    risk=Risk.LOW,
    timeout_seconds=60,
    example={"amounts": [{"invoice": "INV-1", "amount": "120.00", "currency": "USD"},
                         {"invoice": "INV-2", "amount": "80.50", "currency": "GBP"}],
             "rates": {"USD": 0.92, "GBP": 1.17}, "to": "EUR", "dataset": "s3://ledger/{{ inputs.period }}.json"},
    idempotent=True,
)
def convert_amounts(ctx: StepContext) -> dict:
    # Parameters that break the schema fail permanently here; the schema's defaults are filled in.
    params = checked_params(ctx, NAME)
    if params.get("dataset"):
        ctx.record_dataset("in", params["dataset"])
    rates = {currency: Decimal(str(rate)) for currency, rate in params["rates"].items()}
    rates[params["to"]] = Decimal(1)
    quantum = Decimal(1).scaleb(-params["decimals"])
    converted, rejected, total = [], [], Decimal(0)
    records = params["amounts"]
    for index, record in enumerate(records):
        try:
            amount = Decimal(str(record["amount"]))
            rate = rates[record["currency"]]
        except KeyError:
            rejected.append({"index": index, "reason": f"no rate for {record['currency']}"})
            continue
        except ArithmeticError:
            rejected.append({"index": index, "reason": f"amount {record['amount']!r} is not a number"})
            continue
        value = (amount * rate).quantize(quantum, rounding=ROUND_HALF_EVEN)
        total += value
        converted.append({**record, "amount": str(value), "currency": params["to"], "from": record["currency"]})
        if (index + 1) % PROGRESS_EVERY == 0:
            ctx.heartbeat({"records_done": index + 1, "records_total": len(records)})
    ctx.add_metrics(records_in=len(records), records_out=len(converted), records_rejected=len(rejected))
    ctx.log("amounts converted", converted=len(converted), rejected=len(rejected), currency=params["to"])
    if records and not converted:
        raise PermanentStepError(f"Every amount was rejected, the first because of {rejected[0]['reason']}: "
                                 f"add the missing rates or fix the data.")
    return {"currency": params["to"], "total": str(total), "converted": converted, "rejected": rejected}
