"""Knowledge benchmark: embedding throughput, query latency on 100,000 incidents, memory.

The 100,000 incidents are synthesized from the hand-written templates under fixtures/incidents
(filled with varied hosts, tables, partners, steps and dates). Embedding 100,000 distinct texts
takes 10-30 minutes on two shared cores, so the corpus is composed at the text level instead:
a pool of POOL_PARAGRAPHS distinct paragraphs (each stitched from a few filled templates of one
category, 85-160 words, so the product's `passages()` keeps each one whole and apart), and every
incident is two paragraphs of its category, a distinct pair. Its vector is what the product
computes for its text (`embed_documents`: the model's embedding of each passage, cached by
content hash, pooled), so only the pool is ever embedded, once, into var/bench/knowledge.
The index is the product's (faiss HNSW above 50,000 documents, BM25 beside it); 300 short
failure texts are then timed end to end: query encoding, dense + lexical retrieval, fusion and
root-cause scoring. Reports p50/p95 (warm), embedding throughput and process RSS.

    .venv/bin/python -m bench knowledge          (BENCH_INCIDENTS=20000 for a quicker run)
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "var" / "bench" / "knowledge"
POOL_PARAGRAPHS = 3000
PARAGRAPH_WORDS = (85, 160)
HOSTS = [f"{p}-{n:02d}.{z}" for p in ("etl", "batch", "ingest", "loader", "spark", "sftp") for n in range(1, 13)
         for z in ("prod", "dc2", "eu-west-1")]
STEPS = ["extract", "load_orders", "copy_files", "transform", "merge_ledger", "export", "notify", "dq_check",
         "fetch_rates", "reconcile"]
OPENERS = ["", "Nightly run: ", "Retry 3 of 5: ", "Month-end: ", "Backfill job: ", "On-call page: ",
           "Scheduled run failed. ", "Operator report: "]
CLOSERS = ["", " Retries did not help.", " Started after the 02:00 schedule.", " Only in production.",
           " Seen twice this week.", " Downstream reports are stale.", " Partner notified."]
START = datetime(2022, 1, 1, tzinfo=timezone.utc)


def _templates():
    sys.path.insert(0, str(ROOT / "fixtures" / "incidents"))
    from generate import TEMPLATES, fill

    return TEMPLATES, fill


def synthesize(count: int, seed: int) -> tuple[list[str], list[str]]:
    """`count` short failure texts (as a checkpoint shows them) and their categories."""
    templates, fill = _templates()
    rng = random.Random(seed)
    categories = sorted(templates)
    texts, labels = [], []
    for _ in range(count):
        category = rng.choice(categories)
        title, text, cause, _ = rng.choice(templates[category])
        when = START + timedelta(minutes=rng.randint(0, 900 * 24 * 60))
        body = (f"{rng.choice(OPENERS)}{fill(title, rng, when)} (step {rng.choice(STEPS)} on {rng.choice(HOSTS)}). "
                f"{fill(text, rng, when)}{rng.choice(CLOSERS)}")
        if rng.random() < 0.5:
            body += " " + fill(cause, rng, when)
        texts.append(body)
        labels.append(category)
    return texts, labels


def _paragraph(entries, fill, rng) -> str:
    """One account of a failure: filled templates of one category until it has 85-160 words."""
    while True:
        when = START + timedelta(minutes=rng.randint(0, 900 * 24 * 60))
        parts = [f"{rng.choice(OPENERS)}(step {rng.choice(STEPS)} on {rng.choice(HOSTS)})"]
        for title, text, cause, fix in rng.sample(entries, len(entries)):
            parts += [fill(title, rng, when) + ".", fill(text, rng, when), fill(cause, rng, when), fill(fix, rng, when)]
            words = len(" ".join(parts).split())
            if words >= PARAGRAPH_WORDS[0]:
                break
        paragraph = " ".join(" ".join(parts).split())
        if PARAGRAPH_WORDS[0] <= len(paragraph.split()) <= PARAGRAPH_WORDS[1]:
            return paragraph


def compose_incidents(count: int, seed: int) -> tuple[list[str], list[str], int]:
    """`count` distinct incident texts of two pool paragraphs each, their categories, the pool size."""
    templates, fill = _templates()
    rng = random.Random(seed)
    categories = sorted(templates)
    pool = {c: [] for c in categories}
    seen = set()
    while sum(len(v) for v in pool.values()) < POOL_PARAGRAPHS:
        category = categories[sum(len(v) for v in pool.values()) % len(categories)]
        paragraph = _paragraph(templates[category], fill, rng)
        if paragraph not in seen:
            seen.add(paragraph)
            pool[category].append(paragraph)
    texts, labels, pairs = [], [], set()
    while len(texts) < count:
        category = rng.choice(categories)
        first, second = rng.sample(range(len(pool[category])), 2)
        if (category, first, second) in pairs:
            continue
        pairs.add((category, first, second))
        texts.append(f"{pool[category][first]}\n\n{pool[category][second]}")
        labels.append(category)
    return texts, labels, len(seen)


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
    import django

    django.setup()
    import faiss
    from django.conf import settings

    from apps.incidents.taxonomy import DEFAULT_CATEGORIES
    from apps.knowledge.embedding import EmbeddingCache, SentenceTransformerEncoder, embed_documents, encode_query
    from apps.knowledge.fusion import label_vectors
    from apps.knowledge.index import HNSW_THRESHOLD, Document, KnowledgeIndex, doc_id
    from apps.knowledge.ranking import (DENSE_CANDIDATES, allowed_mask, category_history, category_prototypes,
                                        default_fusion_weights, rank, score_categories)
    from apps.knowledge.textproc import content_hash, passages

    count = int(os.environ.get("BENCH_INCIDENTS", "100000"))
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"knowledge bench: {count} incidents, {os.cpu_count()} CPUs, faiss threads {faiss.omp_get_max_threads()}, "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)

    started = time.perf_counter()
    encoder = SentenceTransformerEncoder()
    print(f"model load: {time.perf_counter() - started:.1f}s", flush=True)

    fresh, _ = synthesize(512, seed=int(time.time()))
    started = time.perf_counter()
    encoder.encode(fresh, batch_size=128)
    fresh_rate = len(fresh) / (time.perf_counter() - started)
    print(f"embedding throughput: {fresh_rate:.0f} texts/s (512 fresh failure texts of ~40 words, batch 128, "
          f"load average {os.getloadavg()[0]:.2f})", flush=True)

    texts, labels, pool_size = compose_incidents(count, seed=2024)
    sample = random.Random(1).sample(range(count), 200)
    assert all(len(passages(texts[i])) == 2 for i in sample), "a pool paragraph must be one passage"
    cache = EmbeddingCache(OUT / "embedding_cache.sqlite3")
    progress = {"done": 0, "reported": 0, "cached": None}
    started = time.perf_counter()

    def report(n):
        if progress["cached"] is None:  # embed() reports the cache hits first
            progress["cached"] = n
        progress["done"] += n
        if progress["done"] - progress["reported"] >= 500:
            progress["reported"] = progress["done"]
            elapsed = time.perf_counter() - started
            print(f"  passages {progress['done']} ({progress['done'] / elapsed:.0f}/s incl. cache hits)", flush=True)

    vectors = embed_documents(texts, encoder=encoder, cache=cache, progress=report)
    build_seconds = time.perf_counter() - started
    embedded_now = progress["done"] - (progress["cached"] or 0)
    rate = f", {embedded_now / build_seconds:.1f} passages/s" if embedded_now else ""
    print(f"document vectors: {count} incidents = {2 * count} passages, {pool_size} distinct ({embedded_now} embedded "
          f"now{rate}, the others from the content-hash cache) in {build_seconds:.1f}s = "
          f"{count / build_seconds:.0f} documents/s", flush=True)

    docs = [Document(id=doc_id("incident", i + 1), kind="incident", ref=str(i + 1), title=t[:80], text=t,
                     hash=str(i), category=c) for i, (t, c) in enumerate(zip(texts, labels))]
    background = [f"{name}\n{description}" for _, name, description in DEFAULT_CATEGORIES]
    docs += [Document(id=doc_id("category", n + 1), kind="category", ref=slug, title=name, text=text,
                      hash=content_hash(text), category=slug)
             for n, ((slug, name, _), text) in enumerate(zip(DEFAULT_CATEGORIES, background))]
    vectors = np.vstack([vectors, embed_documents(background, encoder=encoder, cache=cache)])
    del texts
    started = time.perf_counter()
    index = KnowledgeIndex(None)
    index.upsert(docs, vectors)
    del docs, vectors
    kind = "HNSW M=32 efConstruction=80 efSearch=128" if len(index) > HNSW_THRESHOLD else "exact flat"
    print(f"index build ({kind}, BM25): {time.perf_counter() - started:.1f}s", flush=True)
    # What a serving process does when another one saved a new version: load it from disk.
    started = time.perf_counter()
    index.directory = OUT / "index"
    index.save(kind="bench")
    saved_seconds = time.perf_counter() - started
    started = time.perf_counter()
    index = KnowledgeIndex.load(OUT / "index")
    load_seconds = time.perf_counter() - started
    started = time.perf_counter()
    KnowledgeIndex._prepare(index)  # as a load did before BM25 was saved with the index
    rebuild_seconds = time.perf_counter() - started
    print(f"index saved in {saved_seconds:.1f}s; loaded from disk (as a serving process does on a new version) in "
          f"{load_seconds:.1f}s with its saved BM25 "
          f"(building BM25 again instead: {rebuild_seconds:.1f}s)", flush=True)
    prototypes = category_prototypes(index)
    history = category_history(index)
    candidates = sorted({slug for slug, _, _ in DEFAULT_CATEGORIES})
    # Scored as with learned weights: every feature, the labels' own names included.
    names = label_vectors({slug: name for slug, name, _ in DEFAULT_CATEGORIES})
    fusion = default_fusion_weights() + 1.0

    queries, _ = synthesize(320, seed=7)
    encode_times, dense_times, total_times = [], [], []
    load_during = []
    for number, query in enumerate(queries):
        started = time.perf_counter()
        vector = encode_query(query, encoder)
        encoded = time.perf_counter()
        index.dense_search(vector, DENSE_CANDIDATES)
        searched = time.perf_counter()
        ranked = rank(index, query, vector, mode="hybrid", allowed=allowed_mask(index))
        score_categories(index, ranked, vector, candidates, prototypes=prototypes, history=history,
                         label_vectors=names, fusion=fusion)
        finished = time.perf_counter()
        if number >= 20:  # the first queries warm caches and allocators
            encode_times.append(encoded - started)
            dense_times.append(searched - encoded)
            total_times.append((encoded - started) + (finished - searched))
        if number % 50 == 0:
            load_during.append(os.getloadavg()[0])
    flat = faiss.IndexFlatIP(index.vectors.shape[1])
    flat.add(index.vectors)
    faiss.omp_set_num_threads(1)
    flat_times = []
    recall = []
    precision_cosines, precision_overlap = [], []  # the product's query vectors against float32's
    for query in queries[20:120]:
        vector = encoder.encode([query])[0].reshape(1, -1)
        started = time.perf_counter()
        _, exact = flat.search(vector, 10)
        flat_times.append(time.perf_counter() - started)
        found = sorted(index.dense_search(vector[0], DENSE_CANDIDATES), key=lambda hit: -hit[1])
        approximate = {position for position, _ in found[:10]}
        recall.append(len(approximate & set(exact[0].tolist())) / 10)
        model_vector = encoder.model.encode([query], normalize_embeddings=True, convert_to_numpy=True,
                                            show_progress_bar=False)
        precision_cosines.append(float(model_vector[0] @ vector[0]))
        _, model_exact = flat.search(model_vector.astype(np.float32), 10)
        precision_overlap.append(len(set(model_exact[0].tolist()) & set(exact[0].tolist())) / 10)

    current, peak = rss_mb()
    report = {
        "incidents": count, "pool_passages": pool_size, "load_average_during_queries": round(max(load_during), 2),
        "embedding_texts_per_s": round(fresh_rate), "document_vectors_per_s": round(count / build_seconds),
        "passages_embedded_now": embedded_now,
        "query_p50_ms": round(percentile(total_times, 50), 1), "query_p95_ms": round(percentile(total_times, 95), 1),
        "encode_p50_ms": round(percentile(encode_times, 50), 1), "encode_p95_ms": round(percentile(encode_times, 95), 1),
        "dense_search_p50_ms": round(percentile(dense_times, 50), 2),
        "dense_search_p95_ms": round(percentile(dense_times, 95), 2),
        "flat_search_p50_ms": round(percentile(flat_times, 50), 2),
        "flat_search_p95_ms": round(percentile(flat_times, 95), 2),
        "hnsw_recall_at_10": round(float(np.mean(recall)), 3),
        "query_precision": settings.FLOWDECK_QUERY_PRECISION,
        "query_cosine_to_float32_mean": round(float(np.mean(precision_cosines)), 4),
        "query_cosine_to_float32_min": round(float(np.min(precision_cosines)), 4),
        "exact_top10_overlap_with_float32": round(float(np.mean(precision_overlap)), 3),
        "index_load_s": round(load_seconds, 1), "bm25_rebuild_s": round(rebuild_seconds, 1),
        "rss_mb": round(current), "peak_rss_mb": round(peak),
    }
    print(f"query latency, warm, {len(total_times)} queries (encode + dense + BM25 + RRF + root-cause scoring): "
          f"p50 {report['query_p50_ms']} ms, p95 {report['query_p95_ms']} ms "
          f"(load average up to {report['load_average_during_queries']})")
    print(f"  of which query encoding p50 {report['encode_p50_ms']} ms, p95 {report['encode_p95_ms']} ms")
    print(f"  dense search alone ({kind}, {DENSE_CANDIDATES} candidates as retrieval takes them): "
          f"p50 {report['dense_search_p50_ms']} ms / p95 {report['dense_search_p95_ms']} ms, top-10 recall "
          f"{report['hnsw_recall_at_10']} against exact search; exact flat p50 {report['flat_search_p50_ms']} ms / "
          f"p95 {report['flat_search_p95_ms']} ms")
    print(f"  query vectors ({report['query_precision']}) against the model's float32 vectors: cosine mean "
          f"{report['query_cosine_to_float32_mean']}, min {report['query_cosine_to_float32_min']}; exact top 10 "
          f"shared {report['exact_top10_overlap_with_float32']}")
    print(f"memory: RSS {report['rss_mb']} MB, peak {report['peak_rss_mb']} MB")
    (OUT / "last_report.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
