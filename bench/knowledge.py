"""Knowledge benchmark: embedding throughput, query latency on 100,000 incidents, memory.

Synthesizes 100,000 incidents from the hand-written templates under fixtures/incidents (with
varied hosts, tables, partners, steps and phrasing), embeds them with the real
all-MiniLM-L6-v2 model once and caches the vectors under var/bench/knowledge (a later run reuses
them), builds the index the product uses (faiss HNSW above 50,000 documents, BM25 beside it),
then times 300 queries end to end: query encoding, dense + lexical retrieval, fusion and
root-cause scoring. Reports p50/p95 (warm), embedding throughput and process RSS.

    .venv/bin/python -m bench.knowledge          (BENCH_INCIDENTS=20000 for a quicker run)
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "var" / "bench" / "knowledge"
GENERATOR_VERSION = 1
CHUNK = 5000
HOSTS = [f"{p}-{n:02d}.{z}" for p in ("etl", "batch", "ingest", "loader", "spark", "sftp") for n in range(1, 13)
         for z in ("prod", "dc2", "eu-west-1")]
STEPS = ["extract", "load_orders", "copy_files", "transform", "merge_ledger", "export", "notify", "dq_check",
         "fetch_rates", "reconcile"]
OPENERS = ["", "Nightly run: ", "Retry 3 of 5: ", "Month-end: ", "Backfill job: ", "On-call page: ",
           "Scheduled run failed. ", "Operator report: "]
CLOSERS = ["", " Retries did not help.", " Started after the 02:00 schedule.", " Only in production.",
           " Seen twice this week.", " Downstream reports are stale.", " Partner notified."]


def _templates() -> dict:
    sys.path.insert(0, str(ROOT / "fixtures" / "incidents"))
    from generate import TEMPLATES, fill

    return TEMPLATES, fill


def synthesize(count: int, seed: int) -> tuple[list[str], list[str]]:
    """`count` varied incident texts and their categories."""
    templates, fill = _templates()
    rng = random.Random(seed)
    categories = sorted(templates)
    texts, labels = [], []
    from datetime import datetime, timedelta, timezone

    start = datetime(2022, 1, 1, tzinfo=timezone.utc)
    for _ in range(count):
        category = rng.choice(categories)
        title, text, cause, _ = rng.choice(templates[category])
        when = start + timedelta(minutes=rng.randint(0, 900 * 24 * 60))
        body = (f"{rng.choice(OPENERS)}{fill(title, rng, when)} (step {rng.choice(STEPS)} on {rng.choice(HOSTS)}). "
                f"{fill(text, rng, when)}{rng.choice(CLOSERS)}")
        if rng.random() < 0.5:
            body += " " + fill(cause, rng, when)
        texts.append(body)
        labels.append(category)
    return texts, labels


def rss_mb() -> tuple[float, float]:
    """Current and peak resident memory of this process, in MB (Linux /proc)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def percentile(values, q) -> float:
    return float(np.percentile(np.array(values) * 1000, q))


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apps.settings")
    sys.path.insert(0, str(ROOT))
    import faiss

    from apps.incidents.taxonomy import DEFAULT_CATEGORIES
    from apps.knowledge.embedding import SentenceTransformerEncoder
    from apps.knowledge.index import HNSW_THRESHOLD, Document, KnowledgeIndex, doc_id
    from apps.knowledge.ranking import category_prototypes, rank, score_categories
    from apps.knowledge.textproc import content_hash

    count = int(os.environ.get("BENCH_INCIDENTS", "100000"))
    threads = faiss.omp_get_max_threads()
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"knowledge bench: {count} incidents, {os.cpu_count()} CPUs, faiss threads {threads}", flush=True)

    started = time.perf_counter()
    encoder = SentenceTransformerEncoder()
    print(f"model load: {time.perf_counter() - started:.1f}s", flush=True)

    fresh, _ = synthesize(2000, seed=99)
    started = time.perf_counter()
    encoder.encode(fresh, batch_size=128)
    print(f"embedding throughput: {len(fresh) / (time.perf_counter() - started):.0f} texts/s "
          f"(2,000 fresh incident texts, batch 128, CPU)", flush=True)

    texts, labels = synthesize(count, seed=2024)
    # The i-th synthesized text does not depend on `count`, so runs of any size share the chunks.
    key = hashlib.sha256(f"{GENERATOR_VERSION}:{encoder.name}".encode()).hexdigest()[:16]
    chunk_dir = OUT / f"vectors-{key}"
    chunk_dir.mkdir(exist_ok=True)
    started, embedded = time.perf_counter(), 0
    parts = []
    # Chunks are cached as they are written, so an interrupted first run resumes where it stopped.
    for begin in range(0, count, CHUNK):
        chunk_file = chunk_dir / f"{begin:07d}-{min(CHUNK, count - begin)}.npy"
        if chunk_file.exists():
            parts.append(np.load(chunk_file))
            continue
        parts.append(encoder.encode(texts[begin:begin + CHUNK], batch_size=128))
        np.save(chunk_file, parts[-1])
        embedded += len(parts[-1])
        print(f"  embedded {begin + len(parts[-1])}/{count} "
              f"({embedded / (time.perf_counter() - started):.0f} texts/s)", flush=True)
    vectors = np.vstack(parts)
    print(f"vectors: {count - embedded} from the cache in {chunk_dir.relative_to(ROOT)}, {embedded} embedded now",
          flush=True)

    docs = [Document(id=doc_id("incident", i + 1), kind="incident", ref=str(i + 1), title=t[:80], text=t,
                     hash=str(i), category=c) for i, (t, c) in enumerate(zip(texts, labels))]
    background = [f"{name}\n{description}" for _, name, description in DEFAULT_CATEGORIES]
    docs += [Document(id=doc_id("category", n + 1), kind="category", ref=slug, title=name, text=text,
                      hash=content_hash(text), category=slug)
             for n, ((slug, name, _), text) in enumerate(zip(DEFAULT_CATEGORIES, background))]
    vectors = np.vstack([vectors, encoder.encode(background)])
    started = time.perf_counter()
    index = KnowledgeIndex(None)
    index.upsert(docs, vectors)
    kind = "HNSW M=32 efConstruction=80 efSearch=128" if len(docs) > HNSW_THRESHOLD else "exact flat"
    print(f"index build ({kind}, BM25): {time.perf_counter() - started:.1f}s", flush=True)
    prototypes = category_prototypes(index)
    candidates = sorted({slug for slug, _, _ in DEFAULT_CATEGORIES})

    queries, _ = synthesize(320, seed=7)
    encode_times, dense_times, total_times = [], [], []
    for number, query in enumerate(queries):
        started = time.perf_counter()
        vector = encoder.encode([query])[0]
        encoded = time.perf_counter()
        index.dense_search(vector, 50)
        searched = time.perf_counter()
        ranked = rank(index, query, vector, mode="hybrid")
        score_categories(index, ranked, vector, candidates, prototypes=prototypes)
        finished = time.perf_counter()
        if number >= 20:  # the first queries warm caches and allocators
            encode_times.append(encoded - started)
            dense_times.append(searched - encoded)
            total_times.append((encoded - started) + (finished - searched))
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(index.vectors)
    faiss.omp_set_num_threads(1)
    flat_times = []
    for query in queries[20:120]:
        vector = encoder.encode([query])[0].reshape(1, -1)
        started = time.perf_counter()
        flat.search(vector, 50)
        flat_times.append(time.perf_counter() - started)

    current, peak = rss_mb()
    report = {
        "incidents": count,
        "query_p50_ms": round(percentile(total_times, 50), 1), "query_p95_ms": round(percentile(total_times, 95), 1),
        "encode_p50_ms": round(percentile(encode_times, 50), 1), "encode_p95_ms": round(percentile(encode_times, 95), 1),
        "dense_search_p50_ms": round(percentile(dense_times, 50), 2),
        "dense_search_p95_ms": round(percentile(dense_times, 95), 2),
        "flat_search_p50_ms": round(percentile(flat_times, 50), 2),
        "flat_search_p95_ms": round(percentile(flat_times, 95), 2),
        "rss_mb": round(current), "peak_rss_mb": round(peak),
    }
    print(f"query latency, warm, {len(total_times)} queries (encode + dense + BM25 + RRF + root-cause scoring): "
          f"p50 {report['query_p50_ms']} ms, p95 {report['query_p95_ms']} ms")
    print(f"  of which query encoding p50 {report['encode_p50_ms']} ms, p95 {report['encode_p95_ms']} ms")
    print(f"  dense search alone ({kind}): p50 {report['dense_search_p50_ms']} ms / p95 {report['dense_search_p95_ms']} ms; "
          f"exact flat p50 {report['flat_search_p50_ms']} ms / p95 {report['flat_search_p95_ms']} ms")
    print(f"memory: RSS {report['rss_mb']} MB, peak {report['peak_rss_mb']} MB")
    (OUT / "last_report.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
