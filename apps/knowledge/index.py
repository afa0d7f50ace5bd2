"""The knowledge index on disk: documents, their vectors, a faiss index and a lexical index.

A directory (settings.VAR_DIR / "knowledge" / "index") holds:
  docs.jsonl    the id map: one document per line (faiss id, kind, reference, team, category,
                lexical text, content hash), in the same order as the vectors;
  vectors.npy   unit-length embeddings, used for category prototypes and to rebuild faiss;
  dense.faiss   faiss IndexIDMap2 over an inner-product index (flat, or HNSW when large);
  lexical-N/    the BM25 index of version N (bm25s's own files), so a reader loads it instead of
                tokenizing every document again;
  meta.json     model, version counter, build time, the evidence weights learned from history.
Writers take an exclusive file lock and replace files atomically, then bump the version; a
reader in any process reloads when the version on disk differs from the one it holds (and takes
over a meta.json changed alone, the learned weights, without reloading).
Faiss ids encode the document kind and the database key (`doc_id`), so they stay stable.
"""

import fcntl
import json
import os
import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import bm25s
import faiss
import numpy as np

from apps.knowledge.textproc import is_code, lexical_tokens

KIND_CODES = {"incident": 1, "runbook": 2, "category": 3}
KIND_SHIFT = 40
# Above this many documents, exact search gives way to HNSW (approximate, sub-linear).
HNSW_THRESHOLD = 50_000


def doc_id(kind: str, key: int) -> int:
    return (KIND_CODES[kind] << KIND_SHIFT) | int(key)


@dataclass
class Document:
    id: int
    kind: str
    ref: str
    title: str
    text: str
    hash: str
    team_id: int | None = None
    category: str = ""
    extra: dict = field(default_factory=dict)


class KnowledgeIndex:
    def __init__(self, directory: Path | None):
        self.directory = Path(directory) if directory else None
        self.docs: list[Document] = []
        self.vectors = np.zeros((0, 0), dtype=np.float32)
        self.meta: dict = {}
        self.dense = None
        self.lexical = None
        self._position: dict[int, int] = {}
        # What the suggestion code derives from this loaded index (category centroids, candidate
        # labels, label vectors): computed once per load, dropped when the documents change.
        self.derived: dict = {}
        self.kinds = np.zeros(0, dtype=object)
        self.positions_by_kind: dict[str, np.ndarray] = {}
        self.ids = np.zeros(0, dtype=np.int64)
        self.team_ids = np.zeros(0, dtype=np.int64)
        self.background_positions = np.zeros(0, dtype=np.int64)

    # ---- reading -------------------------------------------------------------------------
    @property
    def version(self) -> int:
        return self.meta.get("version", 0)

    def __len__(self) -> int:
        return len(self.docs)

    @classmethod
    def load(cls, directory: Path) -> "KnowledgeIndex":
        index = cls(directory)
        meta_path = index.directory / "meta.json"
        if not meta_path.exists():
            return index
        index.meta = json.loads(meta_path.read_text())
        with open(index.directory / "docs.jsonl") as handle:
            index.docs = [Document(**json.loads(line)) for line in handle if line.strip()]
        index.vectors = np.load(index.directory / "vectors.npy")
        index.dense = faiss.read_index(str(index.directory / "dense.faiss"))
        index._prepare(lexical=index._saved_lexical())
        return index

    def _saved_lexical(self):
        """The BM25 index saved with this version (building it anew costs ~30 s at 100,000 documents,
        on the request that finds a new version); None when missing or not of these documents."""
        name = self.meta.get("lexical")
        if not name or not (self.directory / name).is_dir():
            return None
        try:
            lexical = bm25s.BM25.load(str(self.directory / name), show_progress=False)
        except (OSError, ValueError, KeyError):  # removed by a newer save while loading, or unreadable
            return None
        return lexical if lexical.scores.get("num_docs") == len(self.docs) else None

    def _prepare(self, lexical=None) -> None:
        self.derived = {}
        self._position = {doc.id: i for i, doc in enumerate(self.docs)}
        # Column views of the documents, so per-query filtering is vectorized.
        self.kinds = np.array([doc.kind for doc in self.docs], dtype=object)
        # Comparing 100,000 Python strings costs milliseconds a query: positions are kept per kind.
        self.positions_by_kind = {kind: np.flatnonzero(self.kinds == kind) for kind in KIND_CODES}
        self.ids = np.array([doc.id for doc in self.docs], dtype=np.int64)
        self.team_ids = np.array([-1 if doc.team_id is None else doc.team_id for doc in self.docs], dtype=np.int64)
        self.background_positions = np.flatnonzero(self.kinds != "incident")
        self.lexical = lexical
        if self.docs and lexical is None:
            self.lexical = bm25s.BM25()
            self.lexical.index([lexical_tokens(doc.text) or ["_"] for doc in self.docs], show_progress=False)

    def position(self, faiss_id: int) -> int | None:
        return self._position.get(faiss_id)

    def dense_search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """(position, cosine) of the k nearest documents."""
        if not self.docs:
            return []
        # One query is too small to share across OpenMP threads; on a busy host they only spin.
        faiss.omp_set_num_threads(1)
        scores, ids = self.dense.search(query.reshape(1, -1).astype(np.float32), min(k, len(self.docs)))
        return [(self._position[i], float(s)) for i, s in zip(ids[0], scores[0]) if i in self._position]

    def lexical_scores(self, text: str) -> np.ndarray:
        """BM25 score of every document for `text` (zeros when nothing matches)."""
        if not self.docs:
            return np.zeros(0, dtype=np.float32)
        tokens = [t for t in lexical_tokens(text) if t in self.lexical.vocab_dict]
        if not tokens:
            return np.zeros(len(self.docs), dtype=np.float32)
        return np.asarray(self.lexical.get_scores(tokens), dtype=np.float32)

    def known_codes(self, text: str) -> list[str]:
        """Code-like tokens of `text` (letters with digits, or 3+ digit numbers) found in the corpus."""
        if self.lexical is None:
            return []
        return [t for t in lexical_tokens(text) if is_code(t) and t in self.lexical.vocab_dict]

    # ---- writing -------------------------------------------------------------------------
    def upsert(self, docs: list[Document], vectors: np.ndarray) -> None:
        """Add or replace documents (by id)."""
        incoming = {doc.id for doc in docs}
        self.remove(incoming, _prepare=False)
        dimension = vectors.shape[1] if len(vectors) else self.vectors.shape[1]
        kept = self.vectors if self.vectors.size else np.zeros((0, dimension), dtype=np.float32)
        self.docs = self.docs + list(docs)
        self.vectors = np.vstack([kept, vectors.astype(np.float32)]) if len(vectors) else kept
        self._rebuild_dense()
        self._prepare()

    def remove(self, ids, _prepare: bool = True) -> None:
        ids = set(ids)
        keep = [i for i, doc in enumerate(self.docs) if doc.id not in ids]
        if len(keep) == len(self.docs):
            return
        self.docs = [self.docs[i] for i in keep]
        self.vectors = self.vectors[keep] if self.vectors.size else self.vectors
        if _prepare:
            self._rebuild_dense()
            self._prepare()

    def _rebuild_dense(self) -> None:
        dimension = self.vectors.shape[1] if self.vectors.ndim == 2 and self.vectors.shape[1] else 384
        if len(self.docs) > HNSW_THRESHOLD:
            inner = faiss.IndexHNSWFlat(dimension, 32, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = 80
            inner.hnsw.efSearch = 128
        else:
            inner = faiss.IndexFlatIP(dimension)
        self.dense = faiss.IndexIDMap2(inner)
        if len(self.docs):
            self.dense.add_with_ids(self.vectors, np.array([d.id for d in self.docs], dtype=np.int64))

    def save(self, **meta) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.meta = {**self.meta, **meta, "version": self.version + 1, "saved_at": time.time(),
                     "documents": len(self.docs)}
        _atomic_write(self.directory / "docs.jsonl",
                      lambda h: h.writelines(json.dumps(asdict(d)) + "\n" for d in self.docs), text=True)
        _atomic_write(self.directory / "vectors.npy", lambda h: np.save(h, self.vectors))
        tmp = self.directory / "dense.faiss.tmp"
        faiss.write_index(self.dense, str(tmp))
        os.replace(tmp, self.directory / "dense.faiss")
        # BM25 goes in a folder of its own per version, so a reader still loading the previous one finds it.
        self.meta["lexical"] = None
        if self.lexical is not None:
            self.meta["lexical"] = f"lexical-{self.version}"
            self.lexical.save(str(self.directory / self.meta["lexical"]), show_progress=False)
        # meta.json last: readers that see the new version find every other file already in place.
        _atomic_write(self.directory / "meta.json", lambda h: h.write(json.dumps(self.meta)), text=True)
        for old in self.directory.glob("lexical-*"):
            if old.name not in (self.meta["lexical"], f"lexical-{self.version - 1}"):
                shutil.rmtree(old, ignore_errors=True)


def _atomic_write(path: Path, write, text: bool = False) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w" if text else "wb") as handle:
        write(handle)
    os.replace(tmp, path)


@contextmanager
def _writers_lock(directory: Path):
    """The exclusive lock every writer of `directory` holds (across processes)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextmanager
def writing(directory: Path):
    """The index under an exclusive lock, freshly loaded; the caller saves it."""
    directory = Path(directory)
    with _writers_lock(directory):
        yield KnowledgeIndex.load(directory)


def record_meta(directory: Path, **meta) -> None:
    """Add `meta` (the learned evidence weights) to meta.json under the writers' lock. The documents
    are unchanged, so the version stays: readers take the new meta over without reloading them."""
    directory = Path(directory)
    with _writers_lock(directory):
        current = json.loads((directory / "meta.json").read_text())
        current.update(meta)
        _atomic_write(directory / "meta.json", lambda h: h.write(json.dumps(current)), text=True)


class IndexReader:
    """One loaded index per process, reloaded when another process saved a newer version; a change
    to meta.json alone (learned weights) is taken over without reloading the documents."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self._index: KnowledgeIndex | None = None
        self._lock = threading.Lock()

    def disk_meta(self) -> dict:
        """The index's meta.json as written last, without loading the index."""
        try:
            return json.loads((self.directory / "meta.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def is_current(self) -> bool:
        """Whether the index in memory is the newest on disk, so `get` would not load one."""
        index = self._index
        return index is not None and index.version == self.disk_meta().get("version", 0)

    def get(self) -> KnowledgeIndex:
        with self._lock:
            meta = self.disk_meta()
            if self._index is None or self._index.version != meta.get("version", 0):
                self._index = KnowledgeIndex.load(self.directory)
            elif meta != self._index.meta:
                self._index.meta = meta
                self._index.derived = {}
            return self._index
