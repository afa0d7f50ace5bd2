"""The `batch.map` step type: apply a record function to a bounded dataset in parallel chunks.

One step attempt (the parent) runs the whole batch:
1. Split: it reads the source once and writes a manifest of chunks. A CSV or JSONL file under
   FLOWDECK_DATA_ROOT is cut into byte ranges of `chunk_size` records; the rows of a SQL query
   are first written to chunk files, so every try of a chunk sees the same rows.
2. Fan out: it sends one `batch_chunk` Celery task per chunk and, while it waits, works on
   unclaimed chunks itself, so the worker slot it holds is never idle.
3. A runner claims a chunk by creating its claim file (O_EXCL: one winner), touches the claim
   while it works, and publishes its result by linking the result file into place (the first
   finisher wins). The parent releases a claim that went stale (its worker died) and sends the
   chunk again; a chunk that broke is sent again up to `chunk_retries` times, then the step fails.
4. Ledger: outputs and rejects are concatenated in chunk order, and the step succeeds only when,
   for every chunk and in total, records in = succeeded + rejected, counted from the files.

All of it lives in files under the attempt's artifact folder, which every worker must share (as
it must share ARTIFACT_DIR and FLOWDECK_DATA_ROOT): a parent whose own worker died is requeued
by the sweeper with the same attempt and resumes from the manifest and the finished chunks.
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from celery import shared_task
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder

from apps.catalog.builtins.batch_functions import RecordRejected, get_record_function, record_function_names
from apps.catalog.builtins.common import jsonable
from apps.catalog.builtins.sql import run_sql
from apps.catalog.registry import (PermanentStepError, Reason, StepContext, checked_params, get_step_type, schema_defaults,
                                  step_type, with_defaults)
from apps.paths import DATA_ROOT, scrub
from apps.runs.engine.contract import worker_identity
from apps.runs.models import AttemptState, StepAttempt

SCHEMA = "https://json-schema.org/draft/2020-12/schema"
POLL_SECONDS = 0.2
CLAIM_TOUCH_SECONDS = 1.0
COPY_BLOCK = 1 << 20
FILE_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}

FILE_SOURCE = {
    "type": "object", "additionalProperties": False, "required": ["file"], "properties": {
        "file": {"type": "string", "minLength": 1,
                 "description": "Path of a .csv or .jsonl file, relative to FLOWDECK_DATA_ROOT."},
        "format": {"enum": ["csv", "jsonl"], "description": "Default: from the file's extension."},
        "encoding": {"type": "string", "default": "utf-8"},
        "delimiter": {"type": "string", "minLength": 1, "maxLength": 1, "default": ","},
    },
}

PARAMS_SCHEMA = {
    "$schema": SCHEMA, "type": "object", "additionalProperties": False, "required": ["source", "function"],
    "properties": {
        "source": {
            "description": "Where the records come from: a file under the data root, or a SQL query.",
            "oneOf": [
                FILE_SOURCE,
                {"type": "object", "additionalProperties": False, "required": ["connection", "sql"], "properties": {
                    "connection": {"type": "string", "minLength": 1, "description": "An sql connection's name."},
                    "sql": {"type": "string", "minLength": 1, "description": "One read-only statement."},
                    "params": {"type": ["array", "object"], "description": "Values for the placeholders."},
                }},
            ],
        },
        "function": {"type": "string", "minLength": 1, "description": "The record function to apply."},
        "options": {"type": "object", "default": {}, "description": "Passed to the record function."},
        "chunk_size": {"type": "integer", "minimum": 1, "maximum": 1_000_000, "default": 10_000},
        "chunk_retries": {"type": "integer", "minimum": 0, "maximum": 10, "default": 2,
                          "description": "How often a chunk that broke is tried again before the step fails."},
        "chunk_queue": {"type": "string", "minLength": 1, "default": "steps",
                        "description": "The Celery queue the chunks are sent to."},
        "max_records": {"type": "integer", "minimum": 1, "default": 50_000_000,
                        "description": "The dataset is refused when it holds more (batch.map is for bounded data)."},
        "max_rejected": {"type": ["integer", "null"], "minimum": 0, "default": None,
                         "description": "The step fails when more records than this are rejected (null: no limit)."},
    },
}


# --- Files of one batch ----------------------------------------------------------------------------

@dataclass(frozen=True)
class ChunkFiles:
    folder: Path
    index: int

    @property
    def prefix(self) -> str:
        return f"chunk-{self.index:05d}."

    def _path(self, suffix: str) -> Path:
        return self.folder / f"{self.prefix}{suffix}"

    @property
    def claim(self) -> Path:
        return self._path("claim")

    @property
    def result(self) -> Path:
        return self._path("result.json")

    def failures(self, names: set[str]) -> list[str]:
        """Names of this chunk's failure records among `names` (a listing of the folder), in order."""
        return sorted((name for name in names if name.startswith(self.prefix + "failed-")),
                      key=lambda name: int(name.removeprefix(self.prefix + "failed-").removesuffix(".json")))

    def take_claim(self, holder: str) -> bool:
        try:
            descriptor = os.open(self.claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        with os.fdopen(descriptor, "w") as claim:
            claim.write(holder)
        return True

    def touch_claim(self) -> None:
        # A claim released as stale stays released: this runner goes on, the first finisher wins.
        try:
            os.utime(self.claim)
        except FileNotFoundError:
            pass

    def claim_age(self) -> float | None:
        try:
            return time.time() - self.claim.stat().st_mtime
        except FileNotFoundError:
            return None

    def claim_holder(self) -> str:
        try:
            return self.claim.read_text()
        except FileNotFoundError:
            return ""

    def release_claim(self, holder: str | None = None) -> None:
        """Remove the claim; with `holder`, only while it is still that holder's."""
        if holder is None or self.claim_holder() == holder:
            self.claim.unlink(missing_ok=True)

    def publish(self, result: dict) -> None:
        """Link the result into place: a later finisher of the same chunk changes nothing."""
        draft = self._path(f"{result['token']}.result.tmp")
        draft.write_text(json.dumps(result))
        try:
            os.link(draft, self.result)
        except FileExistsError:
            pass
        draft.unlink()

    def record_failure(self, error: Exception, holder: str) -> None:
        number = len(self.failures(set(os.listdir(self.folder)))) + 1
        self._path(f"failed-{number}.json").write_text(json.dumps({
            "error_type": type(error).__name__, "message": scrub(str(error)), "holder": holder}))

    def output_named(self, token: str, kind: str) -> Path:
        return self._path(f"{token}.{kind}.jsonl")


def _manifest_path(folder: Path) -> Path:
    return folder / "manifest.json"


# --- Split ------------------------------------------------------------------------------------------

def _with_source_defaults(params: dict) -> dict:
    """A file source's own defaults (encoding, delimiter) filled in: checked_params fills only the top level."""
    if "file" not in params["source"]:
        return params
    return {**params, "source": schema_defaults(FILE_SOURCE, params["source"])}


def _data_file(relative: str) -> Path:
    path = DATA_ROOT.inside(relative)
    if path is None:
        raise PermanentStepError(f"source.file {relative!r} is outside the data root: give a path relative to it "
                                 f"(FLOWDECK_DATA_ROOT), such as invoices/2026-11.csv.")
    if not path.is_file():
        raise PermanentStepError(f"source.file {DATA_ROOT.shown(path)!r} does not exist under the data root: check the "
                                 f"name, or wait for the file to arrive before running.",
                                 reason=Reason.DATA_FILE_MISSING, file=DATA_ROOT.shown(path))
    return path


def _file_format(source: dict, path: Path) -> str:
    chosen = source.get("format") or FILE_FORMATS.get(path.suffix.lower())
    if chosen is None:
        raise PermanentStepError(f"Cannot tell the format of {path.name}: name it .csv or .jsonl, or set "
                                 f"source.format.")
    return chosen


class _Splitter:
    """Cuts a stream of (end offset, is-a-record) into chunks of `chunk_size` records."""

    def __init__(self, ctx: StepContext, params: dict, path: Path):
        self.ctx, self.path = ctx, str(path)
        self.chunk_size, self.max_records = params["chunk_size"], params["max_records"]
        self.chunks: list[dict] = []
        self.records = 0
        self._start = self._in_chunk = 0
        self._beat = time.monotonic()

    def add(self, end: int) -> None:
        self.records += 1
        self._in_chunk += 1
        if self.records > self.max_records:
            raise PermanentStepError(f"The dataset holds more than max_records={self.max_records} records: split "
                                     f"it, or raise max_records if the workers can take it.")
        if self._in_chunk == self.chunk_size:
            self.cut(end)
        if time.monotonic() - self._beat > 1:
            self._beat = time.monotonic()
            self.ctx.heartbeat({"phase": "splitting", "records_total": self.records})

    def cut(self, end: int) -> None:
        if self._in_chunk:
            self.chunks.append({"index": len(self.chunks), "path": self.path, "start": self._start, "end": end,
                                "first_record": self.records - self._in_chunk + 1, "records": self._in_chunk})
        self._start, self._in_chunk = end, 0


def _lines_with_offsets(handle, encoding: str, offsets: list[int]) -> Iterator[str]:
    """Decoded lines of a binary file; `offsets[0]` is kept at the end of the last line read."""
    for raw in handle:
        offsets[0] += len(raw)
        yield raw.decode(encoding, errors="replace")


def _split_csv(ctx: StepContext, params: dict, path: Path) -> dict:
    source = params["source"]
    splitter = _Splitter(ctx, params, path)
    offsets = [0]
    with path.open("rb") as handle:
        # csv pulls lines only until a record is complete, so the offset marks the record's end.
        reader = csv.reader(_lines_with_offsets(handle, source["encoding"], offsets), delimiter=source["delimiter"])
        header = next(reader, None)
        if not header:
            raise PermanentStepError(f"{path.name} is empty: a CSV source needs a header row naming the fields.")
        header[0] = header[0].removeprefix("\ufeff")
        splitter.cut(offsets[0])
        for row in reader:
            if row:
                splitter.add(offsets[0])
    splitter.cut(offsets[0])
    return {"format": "csv", "header": header, "encoding": source["encoding"], "delimiter": source["delimiter"],
            "records": splitter.records, "chunks": splitter.chunks, "source_uri": f"file://{path}"}


def _split_jsonl(ctx: StepContext, params: dict, path: Path) -> dict:
    splitter = _Splitter(ctx, params, path)
    offset = 0
    with path.open("rb") as handle:
        for raw in handle:
            offset += len(raw)
            if raw.strip():
                splitter.add(offset)
    splitter.cut(offset)
    return {"format": "jsonl", "header": None, "encoding": params["source"]["encoding"],
            "records": splitter.records, "chunks": splitter.chunks, "source_uri": f"file://{path}"}


def _split_query(ctx: StepContext, params: dict, folder: Path) -> dict:
    """Write the query's rows to chunk files: retries of a chunk then see the same rows."""
    source = params["source"]
    chunk_size = params["chunk_size"]
    chunks, records, handle = [], 0, None
    with run_sql(ctx, source["connection"], source["sql"], source.get("params")) as result:
        for row in result.rows:
            if records % chunk_size == 0:
                if handle:
                    handle.close()
                path = folder / f"input-{len(chunks):05d}.jsonl"
                handle = path.open("w")
                chunks.append({"index": len(chunks), "path": str(path), "start": 0, "end": None,
                               "first_record": records + 1, "records": 0})
            handle.write(json.dumps(dict(zip(result.columns, (jsonable(v) for v in row)))) + "\n")
            chunks[-1]["records"] += 1
            records += 1
            if records > params["max_records"]:
                raise PermanentStepError(f"The query returned more than max_records={params['max_records']} rows: "
                                         f"narrow it, or raise max_records.")
    if handle:
        handle.close()
    for chunk in chunks:
        chunk["end"] = Path(chunk["path"]).stat().st_size
    # json.dumps writes ASCII, so the chunk files read back as UTF-8.
    return {"format": "jsonl", "header": None, "encoding": "utf-8", "records": records, "chunks": chunks,
            "source_uri": f"sql://{source['connection']}"}


def load_or_split(ctx: StepContext, params: dict, folder: Path, identity: str) -> dict:
    """The batch's manifest: read back when a requeued parent of the same attempt resumes, else
    made now in an emptied folder (a folder left by another database's run is not this batch)."""
    manifest_path = _manifest_path(folder)
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("identity") == identity:
            return manifest
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    source = params["source"]
    if "file" in source:
        path = _data_file(source["file"])
        manifest = (_split_csv if _file_format(source, path) == "csv" else _split_jsonl)(ctx, params, path)
    else:
        manifest = _split_query(ctx, params, folder)
    manifest["identity"] = identity
    _write_atomically(manifest_path, manifest)
    return manifest


def _write_atomically(path: Path, value: dict) -> None:
    draft = path.with_suffix(".tmp")
    draft.write_text(json.dumps(value))
    draft.replace(path)


# --- One chunk -------------------------------------------------------------------------------------

def _chunk_records(manifest: dict, chunk: dict) -> Iterator[tuple[int, dict, str]]:
    """(record number, record, why it cannot be read or "") for each record of the chunk; blank
    lines are skipped exactly as the split skipped them, so the counts agree."""
    encoding = manifest["encoding"]
    with open(chunk["path"], "rb") as handle:
        handle.seek(chunk["start"])
        data = handle.read(chunk["end"] - chunk["start"])
    number = chunk["first_record"]
    if manifest["format"] == "csv":
        header = manifest["header"]
        for row in csv.reader(io.StringIO(data.decode(encoding, errors="replace"), newline=""),
                              delimiter=manifest["delimiter"]):
            if not row:
                continue
            if len(row) != len(header):
                yield number, {"fields": row}, f"has {len(row)} fields, the header has {len(header)}"
            else:
                yield number, dict(zip(header, row)), ""
            number += 1
        return
    for raw in data.split(b"\n"):
        if not raw.strip():
            continue
        line = raw.decode(encoding, errors="replace")
        try:
            record = json.loads(line)
        except ValueError as exc:
            yield number, {"line": line[:1000]}, f"is not JSON ({exc})"
        else:
            yield (number, record, "") if isinstance(record, dict) else (number, {"value": record},
                                                                        "is not a JSON object")
        number += 1


def _encoded(record) -> str:
    return json.dumps(record, cls=DjangoJSONEncoder, ensure_ascii=False, default=str) + "\n"


def run_chunk(folder: Path, manifest: dict, index: int, params: dict, worker: str) -> bool:
    """Claim chunk `index` and map its records; False when it is done or someone else holds it.
    A reject is a bad record; anything else the function raises breaks the chunk (retried)."""
    files = ChunkFiles(folder, index)
    token = secrets.token_hex(4)
    holder = f"{worker} {token}"
    if files.result.exists() or not files.take_claim(holder):
        return False
    function = get_record_function(params["function"])
    options = params["options"]
    output, rejects = files.output_named(token, "out"), files.output_named(token, "rejects")
    started = touched = time.monotonic()
    counts = {"records": 0, "succeeded": 0, "rejected": 0}
    try:
        with output.open("w") as out, rejects.open("w") as rejected:
            for number, record, unreadable in _chunk_records(manifest, manifest["chunks"][index]):
                counts["records"] += 1
                try:
                    if unreadable:
                        raise RecordRejected(f"record {number} {unreadable}")
                    out.write(_encoded(function.apply(record, options)))
                    counts["succeeded"] += 1
                except RecordRejected as reason:
                    rejected.write(_encoded({"record": number, "reason": str(reason), "data": record}))
                    counts["rejected"] += 1
                if time.monotonic() - touched > CLAIM_TOUCH_SECONDS:
                    touched = time.monotonic()
                    files.touch_claim()
        files.publish({"index": index, "token": token, **counts, "output": output.name, "rejects": rejects.name,
                       "worker": worker, "seconds": round(time.monotonic() - started, 3)})
    except Exception as error:  # the chunk broke: the parent decides whether it is tried again
        output.unlink(missing_ok=True)
        rejects.unlink(missing_ok=True)
        files.record_failure(error, holder)
    finally:
        files.release_claim(holder)
    return True


def _batch_folder(attempt_folder: Path) -> Path:
    return attempt_folder / "batch"


# The task keeps the name it had in apps.runs, so chunk messages queued before an upgrade still find it.
@shared_task(name="flowdeck.runs.batch_chunk", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def batch_chunk(attempt_id: int, index: int, folder: str) -> None:
    """Map one chunk of a running batch.map attempt; nothing when the attempt has ended."""
    params = StepAttempt.objects.filter(pk=attempt_id, state=AttemptState.RUNNING) \
        .values_list("params", flat=True).first()
    batch_folder = Path(folder).resolve()
    if params is None or Path(settings.ARTIFACT_DIR).resolve() not in batch_folder.parents:
        return
    manifest_path = _manifest_path(batch_folder)
    if manifest_path.exists():
        run_chunk(batch_folder, json.loads(manifest_path.read_text()), index,
                  with_defaults(get_step_type("batch.map"), params), worker_identity())


def _send_chunk(attempt_id: int, index: int, folder: Path, queue: str) -> None:
    batch_chunk.apply_async(args=[attempt_id, index, str(folder)], queue=queue)


# --- The parent: fan out, watch, merge ---------------------------------------------------------------

@dataclass
class _Watch:
    """What the parent knows of its chunks between polls."""

    total: int
    done: dict[int, dict] = field(default_factory=dict)
    # Chunk index -> how many failures it had when the parent last sent it.
    sent_after_failures: dict[int, int] = field(default_factory=dict)

    def progress(self, manifest: dict, phase: str) -> dict:
        return {
            "phase": phase, "chunks_done": len(self.done), "chunks_total": self.total,
            "records_done": sum(r["records"] for r in self.done.values()), "records_total": manifest["records"],
            "records_rejected": sum(r["rejected"] for r in self.done.values()),
        }


def _chunk_range(chunk: dict) -> str:
    return f"records {chunk['first_record']} to {chunk['first_record'] + chunk['records'] - 1}"


def _watch_chunks(ctx: StepContext, params: dict, manifest: dict, folder: Path, attempt_id: int) -> _Watch:
    """Send the chunks, work on them too, re-send those that broke or lost their worker, and
    return once every chunk has its result."""
    watch = _Watch(total=len(manifest["chunks"]))
    retries = params["chunk_retries"]
    worker = worker_identity()
    while True:
        names = set(os.listdir(folder))
        runnable = []
        for index in range(watch.total):
            files = ChunkFiles(folder, index)
            if index in watch.done:
                continue
            if files.result.name in names:
                watch.done[index] = json.loads(files.result.read_text())
                continue
            if files.claim.name in names:
                age = files.claim_age()
                if age is None or age <= settings.FLOWDECK_STALE_AFTER_SECONDS:
                    continue
                ctx.log(f"Chunk {index} was held by a worker that stopped answering; giving it to another.",
                        level="warning", chunk=index, holder=files.claim_holder())
                files.release_claim()
                watch.sent_after_failures.pop(index, None)
            failures = files.failures(names)
            if failures:
                last = json.loads((folder / failures[-1]).read_text())
                if len(failures) > retries:
                    raise PermanentStepError(
                        f"Chunk {index} ({_chunk_range(manifest['chunks'][index])}) broke {len(failures)} times, "
                        f"last with {last['error_type']}: {last['message']}. Fix the cause and retry the step.")
            if watch.sent_after_failures.get(index) != len(failures):
                if failures:
                    ctx.log(f"Chunk {index} broke ({last['error_type']}: {last['message']}); trying it again "
                            f"(retry {len(failures)} of {retries}).", level="warning", chunk=index)
                _send_chunk(attempt_id, index, folder, params["chunk_queue"])
                watch.sent_after_failures[index] = len(failures)
            runnable.append(index)
        ctx.heartbeat(watch.progress(manifest, "mapping"))
        if len(watch.done) == watch.total:
            return watch
        # Take chunks from the end: workers consume the messages from the start.
        if not (runnable and run_chunk(folder, manifest, runnable[-1], params, worker)):
            time.sleep(POLL_SECONDS)


def _concatenate(parts: list[Path], target: Path) -> int:
    """Append the files to `target` in order; the number of lines written."""
    lines = 0
    with target.open("wb") as out:
        for part in parts:
            with part.open("rb") as source:
                while block := source.read(COPY_BLOCK):
                    out.write(block)
                    lines += block.count(b"\n")
    return lines


def _merge(manifest: dict, watch: _Watch, folder: Path, attempt_folder: Path) -> dict:
    results = [watch.done[index] for index in range(watch.total)]
    unbalanced = [r["index"] for r, chunk in zip(results, manifest["chunks"])
                  if r["records"] != chunk["records"] or r["succeeded"] + r["rejected"] != r["records"]]
    output_path, rejects_path = attempt_folder / "records.jsonl", attempt_folder / "rejects.jsonl"
    written = _concatenate([folder / r["output"] for r in results], output_path)
    rejected = _concatenate([folder / r["rejects"] for r in results], rejects_path)
    succeeded = sum(r["succeeded"] for r in results)
    if unbalanced or written != succeeded or rejected != sum(r["rejected"] for r in results) \
            or written + rejected != manifest["records"]:
        raise PermanentStepError(
            f"The completeness ledger does not balance: {manifest['records']} records in, {written} written and "
            f"{rejected} rejected (chunks off: {unbalanced or 'none'}). Nothing was lost silently; retry the step.")
    root = Path(settings.ARTIFACT_DIR).resolve()
    samples = []
    with rejects_path.open() as rejects:
        for line, _ in zip(rejects, range(5)):
            entry = json.loads(line)
            samples.append({"record": entry["record"], "reason": entry["reason"]})
    return {
        "records_in": manifest["records"], "succeeded": written, "rejected": rejected, "ledger": "balanced",
        "chunks": watch.total, "output": str(output_path.relative_to(root)),
        "rejects": str(rejects_path.relative_to(root)), "sample_rejects": samples,
    }


def _remove_chunk_files(manifest: dict, watch: _Watch, folder: Path) -> None:
    """The chunks' outputs, merged now; their results and failures stay as the batch's record."""
    for result in watch.done.values():
        (folder / result["output"]).unlink(missing_ok=True)
        (folder / result["rejects"]).unlink(missing_ok=True)
    for chunk in manifest["chunks"]:
        if Path(chunk["path"]).parent == folder:
            Path(chunk["path"]).unlink(missing_ok=True)


@step_type(
    "batch.map", params_schema=PARAMS_SCHEMA,
    summary="Apply a record function to every record of a bounded dataset, in parallel chunks, with a ledger.",
    doc="""Reads a bounded dataset — a CSV or JSONL file under the data root, or the rows of a read-only
SQL query on a connection — cuts it into chunks of `chunk_size` records, and applies the record
function `function` to each record on all the workers at once. The step's progress shows chunks
and records done while it runs.

A record the function refuses is **rejected** with a reason and written to the rejects file; the
batch goes on. A chunk that breaks (an unexpected error) is tried again up to `chunk_retries`
times, and a chunk whose worker dies is given to another worker.

Before the step may succeed, its **completeness ledger** must balance: records in = succeeded +
rejected, for every chunk and in total, counted from the files written.

**Output:** `{"records_in": 1000000, "succeeded": 999000, "rejected": 1000, "ledger": "balanced",
"chunks": 100, "output": "<artifact: records.jsonl>", "rejects": "<artifact: rejects.jsonl>",
"sample_rejects": [{"record": 17, "reason": "..."}]}`.

**Errors:** a missing file, an unknown function, a dataset above `max_records`, more rejects than
`max_rejected`, a chunk that kept breaking: permanent.""",
    timeout_seconds=3600,
    example={"source": {"file": "invoices/{{ inputs.period }}.csv"}, "function": "normalize_invoice",
             "options": {"currencies": ["EUR", "GBP"]}, "chunk_size": 10000, "max_rejected": 100},
)
def batch_map(ctx: StepContext):
    params = _with_source_defaults(checked_params(ctx, "batch.map"))
    if get_record_function(params["function"]) is None:
        raise PermanentStepError(f"There is no record function {params['function']!r}: use one of "
                                 f"{', '.join(record_function_names())}.")
    attempt_folder = Path(ctx.artifact_path("records.jsonl")).parent
    folder = _batch_folder(attempt_folder)
    attempt_id, run_created = StepAttempt.objects.values_list("pk", "step_run__run__created_at") \
        .get(idempotency_key=ctx.idempotency_key)
    manifest = load_or_split(ctx, params, folder, identity=f"attempt {attempt_id} of a run created {run_created}")
    ctx.record_dataset("in", manifest["source_uri"])
    ledger_path = folder / "ledger.json"
    # A requeued parent finds the ledger when its predecessor died after merging.
    if ledger_path.exists():
        ledger = json.loads(ledger_path.read_text())
    else:
        ctx.log(f"Split {manifest['records']} records into {len(manifest['chunks'])} chunks of up to "
                f"{params['chunk_size']}.", records=manifest["records"], chunks=len(manifest["chunks"]))
        watch = _watch_chunks(ctx, params, manifest, folder, attempt_id)
        ctx.heartbeat(watch.progress(manifest, "merging"))
        ledger = {"output": _merge(manifest, watch, folder, attempt_folder),
                  "workers": sorted({result["worker"] for result in watch.done.values()})}
        _write_atomically(ledger_path, ledger)
        _remove_chunk_files(manifest, watch, folder)
    output = ledger["output"]
    ctx.add_metrics(records_in=output["records_in"], records_out=output["succeeded"],
                    records_rejected=output["rejected"])
    ctx.record_dataset("out", f"artifact://{output['output']}")
    ctx.log(f"Ledger balanced: {output['records_in']} in = {output['succeeded']} succeeded + "
            f"{output['rejected']} rejected.", workers=ledger["workers"])
    limit = params["max_rejected"]
    if limit is not None and output["rejected"] > limit:
        raise PermanentStepError(f"{output['rejected']} records were rejected, more than max_rejected={limit}: "
                                 f"read the rejects file {output['rejects']}, fix the data and retry, or raise "
                                 f"max_rejected.")
    return output
