"""Per-record functions that `batch.map` applies: a small registry and the built-in functions.

A record function takes one record (a dict: a CSV row keyed by the header, a JSON object, or a
SQL row keyed by column) and the step's `options`, and returns the record to keep. It raises
`RecordRejected(reason)` when the record itself is bad (the record goes to the rejects file and
the batch goes on); any other exception means the function or its surroundings broke, which
fails the whole chunk so it is retried.

The `test.*` functions exist for tests and benchmarks and are registered only with
FLOWDECK_TEST_STEP_TYPES=1 (or by `register_test_functions()`), like the `test.*` step types.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Callable

from django.conf import settings


class RecordRejected(Exception):
    """This record cannot be processed; the message is the reason written to the rejects file."""


@dataclass(frozen=True)
class RecordFunction:
    name: str
    apply: Callable[[dict, dict], dict]
    summary: str


_FUNCTIONS: dict[str, RecordFunction] = {}


def record_function(name: str, *, summary: str):
    """Register the decorated `apply(record, options) -> record` as record function `name`."""

    def register(apply: Callable[[dict, dict], dict]) -> Callable[[dict, dict], dict]:
        if name in _FUNCTIONS and _FUNCTIONS[name].apply is not apply:
            raise ValueError(f"record function {name!r} is registered twice")
        _FUNCTIONS[name] = RecordFunction(name=name, apply=apply, summary=summary)
        return apply

    return register


def get_record_function(name: str) -> RecordFunction | None:
    return _FUNCTIONS.get(name)


def record_function_names() -> list[str]:
    return sorted(_FUNCTIONS)


# --- Built-ins ----------------------------------------------------------------------------------

@record_function("identity", summary="Keep every record as it is (counting and copying).")
def identity(record: dict, options: dict) -> dict:
    return record


def _required(record: dict, field: str) -> str:
    value = record.get(field)
    text = "" if value is None else str(value).strip()
    if not text:
        raise RecordRejected(f"`{field}` is missing")
    return text


_CURRENCY = re.compile(r"^[A-Z]{3}$")
_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d.%m.%Y")


def _parse_date(text: str, field: str) -> date:
    try:
        return date.fromisoformat(text)  # the common case, far faster than strptime
    except ValueError:
        pass
    for form in _DATE_FORMATS[1:]:
        try:
            return datetime.strptime(text, form).date()
        except ValueError:
            continue
    raise RecordRejected(f"`{field}` {text!r} is not a date (YYYY-MM-DD, DD/MM/YYYY or DD.MM.YYYY)")


@record_function("normalize_invoice",
                 summary="Check and normalize an invoice: id, customer, amount in cents, ISO currency and date.")
def normalize_invoice(record: dict, options: dict) -> dict:
    """Options: `currencies` (allowed ISO codes, default any three letters), `max_amount`."""
    amount_text = _required(record, "amount").replace(",", "").replace(" ", "")
    try:
        amount = Decimal(amount_text)
    except InvalidOperation:
        raise RecordRejected(f"`amount` {record['amount']!r} is not a number") from None
    if not amount.is_finite() or amount <= 0:
        raise RecordRejected(f"`amount` must be positive, got {amount_text}")
    if "max_amount" in options and amount > Decimal(str(options["max_amount"])):
        raise RecordRejected(f"`amount` {amount_text} is above the limit of {options['max_amount']}")
    currency = _required(record, "currency").upper()
    allowed = options.get("currencies")
    if not _CURRENCY.match(currency) or (allowed and currency not in allowed):
        raise RecordRejected(f"`currency` {currency!r} is not an allowed ISO 4217 code")
    cents = (amount * 100).quantize(Decimal(1))
    if cents != amount * 100:
        raise RecordRejected(f"`amount` {amount_text} has more than two decimals")
    return {
        "invoice_id": _required(record, "invoice_id"),
        "customer_id": _required(record, "customer_id"),
        "amount_cents": int(cents),
        "currency": currency,
        "issued_on": _parse_date(_required(record, "issued_on"), "issued_on").isoformat(),
    }


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")


@record_function("clean_contact", summary="Trim a contact's name, lower-case and check the email, normalize the phone.")
def clean_contact(record: dict, options: dict) -> dict:
    email = _required(record, "email").lower()
    if not _EMAIL.match(email):
        raise RecordRejected(f"`email` {email!r} is not an email address")
    phone = re.sub(r"[^\d+]", "", str(record.get("phone") or ""))
    if phone and not re.fullmatch(r"\+?\d{6,15}", phone):
        raise RecordRejected(f"`phone` {record.get('phone')!r} is not a phone number")
    return {"name": " ".join(_required(record, "name").split()), "email": email, "phone": phone}


# --- Test functions ------------------------------------------------------------------------------

def _fail_once(record: dict, options: dict) -> dict:
    """Breaks (not a reject: the chunk fails) on the record whose `id` is `options.fail_on`, the
    first time only: it leaves file `options.marker` behind to remember."""
    if str(record.get("id")) == str(options.get("fail_on")):
        marker = Path(options["marker"])
        if not marker.exists():
            marker.write_text("failed once")
            raise RuntimeError(f"chunk broke on purpose at record {record.get('id')}")
    return record


def _slow(record: dict, options: dict) -> dict:
    """Sleeps `options.seconds` per record (worker-loss tests)."""
    time.sleep(float(options.get("seconds", 0.01)))
    return record


def register_test_functions() -> None:
    record_function("test.fail_once", summary="Fails its chunk once at record `fail_on` (tests).")(_fail_once)
    record_function("test.slow", summary="Sleeps `seconds` per record (tests).")(_slow)


if settings.FLOWDECK_TEST_STEP_TYPES:
    register_test_functions()

