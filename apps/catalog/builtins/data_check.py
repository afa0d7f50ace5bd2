"""The `data.check` step type: a data quality gate over a file or a query, read as a stream."""

import csv
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from apps.catalog.builtins.sql import run_sql
from apps.catalog.registry import PermanentStepError, Reason, StepContext, StepError, checked_params, step_type
from apps.paths import DATA_ROOT

_COLUMN_LIST = {"type": "array", "items": {"type": "string"}, "minItems": 1}

PARAMS_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["source", "checks"],
    "properties": {
        "source": {
            "description": "Where the rows come from: a file under the data folder, or a query on a connection.",
            "oneOf": [
                {"type": "object", "additionalProperties": False, "required": ["file"],
                 "properties": {"file": {"type": "string", "minLength": 1,
                                         "description": "A .csv (with a header row) or .jsonl file, relative to "
                                                        "the data folder (FLOWDECK_DATA_ROOT)."}}},
                {"type": "object", "additionalProperties": False, "required": ["connection", "sql"],
                 "properties": {
                     "connection": {"type": "string", "description": "The name of an sql connection."},
                     "sql": {"type": "string", "description": "A read-only query returning the rows to check."},
                     "params": {"type": ["array", "object"], "description": "Values for the query's placeholders."},
                 }},
            ],
        },
        "checks": {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "description": "The checks to run; every one must pass.",
            "properties": {
                "min_rows": {"type": "integer", "minimum": 0, "description": "At least this many rows."},
                "max_rows": {"type": "integer", "minimum": 0, "description": "At most this many rows."},
                "max_null_ratio": {
                    "type": "object", "additionalProperties": {"type": "number", "minimum": 0, "maximum": 1},
                    "description": "Per column, the largest share of empty values allowed (0.05 = 5%). "
                                   "Empty CSV cells and JSON nulls count as empty.",
                },
                "unique": {
                    "type": "array", "items": {"anyOf": [{"type": "string"}, _COLUMN_LIST]},
                    "description": "Columns whose values must not repeat; a list of columns is unique together.",
                },
                "range": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object", "additionalProperties": False, "minProperties": 1,
                        "properties": {"min": {"type": "number", "description": "Smallest value allowed."},
                                       "max": {"type": "number", "description": "Largest value allowed."}},
                    },
                    "description": "Per column, the numeric range every non-empty value must fall in.",
                },
            },
        },
    },
}

DOC = """Reads every row of a CSV file (with a header row), a JSON Lines file, or a read-only query, and
runs the checks on them: row counts, the share of empty values per column, uniqueness of
columns (or of column combinations), and numeric ranges. Files are read as a stream and must lie
inside the data folder (`FLOWDECK_DATA_ROOT`); `unique` keeps the values it has seen in memory.

**Output:** `{"rows": 1200, "results": [{"check": "min_rows", "passed": true, "observed": 1200,
"expected": ">= 1000"}, ...]}`; the rows read count as records in.

**Errors:**
- any failed check: permanent (a failed quality gate is not retried); the message lists every failed check;
- a path outside the data folder, an unknown file type, invalid parameters: permanent;
- a file that does not exist yet: retryable, for files that arrive late."""


def _data_file(name: str) -> Path:
    path = DATA_ROOT.inside(name)
    if path is None:
        raise PermanentStepError(f"{name!r} is outside the data folder: give a path relative to it "
                                 f"(FLOWDECK_DATA_ROOT), such as exports/invoices-2026-11.csv.")
    if path.suffix.lower() not in (".csv", ".jsonl", ".ndjson"):
        raise PermanentStepError(f"{DATA_ROOT.shown(path)!r} is neither .csv nor .jsonl: data.check reads only "
                                 f"those.")
    if not path.is_file():
        raise StepError(f"{DATA_ROOT.shown(path)!r} does not exist in the data folder (yet): check the name, or retry "
                        f"once it arrives.", reason=Reason.DATA_FILE_MISSING, file=DATA_ROOT.shown(path))
    return path


def _file_rows(path: Path) -> Iterator[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        if path.suffix.lower() == ".csv":
            for row in csv.DictReader(handle):
                yield {column: (value if value != "" else None) for column, value in row.items()}
            return
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError:
                    raise PermanentStepError(f"{path.name} line {number} is not JSON: fix or remove it.") from None


@contextmanager
def _rows(ctx: StepContext, source: dict) -> Iterator[Iterator[dict]]:
    if "file" in source:
        path = _data_file(source["file"])
        ctx.record_dataset("in", path.as_uri())
        yield _file_rows(path)
        return
    ctx.record_dataset("in", f"sql://{source['connection']}")
    with run_sql(ctx, source["connection"], source["sql"], source.get("params")) as result:
        yield (dict(zip(result.columns, row)) for row in result.rows)


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class QualityChecks:
    """Accumulates what the checks need, one row at a time, then judges."""

    def __init__(self, checks: dict):
        self.checks = checks
        self.rows = 0
        self.columns_seen: set[str] = set()
        self.nulls = {column: 0 for column in checks.get("max_null_ratio", {})}
        self.unique_keys = [[key] if isinstance(key, str) else key for key in checks.get("unique", [])]
        self.seen = [set() for _ in self.unique_keys]
        self.duplicates = [0] * len(self.unique_keys)
        self.ranges = {column: {"min": None, "max": None, "outside": 0, "not_numeric": 0}
                       for column in checks.get("range", {})}

    def add(self, row: dict) -> None:
        self.rows += 1
        self.columns_seen.update(row)
        for column in self.nulls:
            if row.get(column) is None:
                self.nulls[column] += 1
        for index, key in enumerate(self.unique_keys):
            value = tuple(row.get(column) for column in key)
            if value in self.seen[index]:
                self.duplicates[index] += 1
            else:
                self.seen[index].add(value)
        for column, seen in self.ranges.items():
            self._add_to_range(column, seen, row.get(column))

    def _add_to_range(self, column: str, seen: dict, value) -> None:
        if value is None:
            return
        number = _number(value)
        if number is None:
            seen["not_numeric"] += 1
            return
        seen["min"] = number if seen["min"] is None else min(seen["min"], number)
        seen["max"] = number if seen["max"] is None else max(seen["max"], number)
        bounds = self.checks["range"][column]
        if number < bounds.get("min", -math.inf) or number > bounds.get("max", math.inf):
            seen["outside"] += 1

    def results(self) -> list[dict]:
        results = []
        if "min_rows" in self.checks:
            results.append(_result("min_rows", self.rows >= self.checks["min_rows"], self.rows,
                                   f">= {self.checks['min_rows']}"))
        if "max_rows" in self.checks:
            results.append(_result("max_rows", self.rows <= self.checks["max_rows"], self.rows,
                                   f"<= {self.checks['max_rows']}"))
        for column, limit in self.checks.get("max_null_ratio", {}).items():
            if self._missing(column):
                results.append(_result(f"max_null_ratio({column})", False, "no such column", f"<= {limit}"))
                continue
            ratio = round(self.nulls[column] / self.rows, 6) if self.rows else 0.0
            results.append(_result(f"max_null_ratio({column})", ratio <= limit, ratio, f"<= {limit}"))
        for key, duplicates in zip(self.unique_keys, self.duplicates):
            name = f"unique({', '.join(key)})"
            missing = [column for column in key if self._missing(column)]
            if missing:
                results.append(_result(name, False, f"no such column: {', '.join(missing)}", "0 duplicates"))
            else:
                results.append(_result(name, duplicates == 0, f"{duplicates} duplicates", "0 duplicates"))
        for column, seen in self.ranges.items():
            bounds = self.checks["range"][column]
            expected = f"{bounds.get('min', '-∞')} .. {bounds.get('max', '∞')}"
            if self._missing(column):
                results.append(_result(f"range({column})", False, "no such column", expected))
                continue
            observed = {"min": seen["min"], "max": seen["max"], "outside": seen["outside"],
                        "not_numeric": seen["not_numeric"]}
            results.append(_result(f"range({column})", seen["outside"] == 0 and seen["not_numeric"] == 0,
                                   observed, expected))
        return results

    def _missing(self, column: str) -> bool:
        # With no rows there is nothing to say a column is absent; the row-count checks speak then.
        return self.rows > 0 and column not in self.columns_seen


def _result(check: str, passed: bool, observed, expected) -> dict:
    return {"check": check, "passed": passed, "observed": observed, "expected": expected}


@step_type("data.check", params_schema=PARAMS_SCHEMA, doc=DOC, timeout_seconds=1800,
           summary="Check a dataset's quality (row counts, empty values, uniqueness, ranges); fail the run if not.",
           example={"source": {"file": "exports/invoices-{{ inputs.period }}.csv"},
                    "checks": {"min_rows": 1000, "max_null_ratio": {"customer_id": 0.0, "email": 0.05},
                               "unique": ["invoice_id"], "range": {"amount": {"min": 0, "max": 1000000}}}},
           idempotent=True)
def data_check(ctx: StepContext):
    params = checked_params(ctx, "data.check")
    checks = QualityChecks(params["checks"])
    with _rows(ctx, params["source"]) as rows:
        for row in rows:
            checks.add(row)
            if checks.rows % 10000 == 0:
                ctx.heartbeat({"rows": checks.rows})
    ctx.add_metrics(records_in=checks.rows)
    results = checks.results()
    failed = [result for result in results if not result["passed"]]
    if failed:
        raise PermanentStepError(f"{len(failed)} of {len(results)} data checks failed: " + "; ".join(
            f"{r['check']} observed {json.dumps(r['observed'], ensure_ascii=False)}, expected {r['expected']}"
            for r in failed), reason=Reason.QUALITY_GATE_FAILED, checks=[r["check"] for r in failed])
    return {"rows": checks.rows, "results": results}
