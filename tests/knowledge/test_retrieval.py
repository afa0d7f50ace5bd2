"""Retrieval quality with the real all-MiniLM-L6-v2 model (loaded once per session)."""

import pytest

from apps.knowledge.index import Document, KnowledgeIndex, doc_id
from apps.knowledge.ranking import rank

TARGET = "LDG-7731 returned: the fiscal period is closed, reopen it in the finance console"
DISTRACTORS = [
    "Settlement batch aborted by the ledger service while posting journal entries: connection timed out",
    "Settlement batch stopped by the ledger service during journal posting, service returned an internal error",
    "The ledger service aborted the settlement job while posting entries, transaction rolled back",
    "Journal posting in the settlement batch was aborted by the ledger API, request rejected",
    "Settlement run failed: ledger service refused the journal entries batch",
    "Ledger service unavailable while the settlement batch posted journal entries",
    "Posting journal entries failed in settlement: the ledger returned HTTP 500",
]
QUERY = "Settlement batch aborted by the ledger service while posting journal entries: LDG-7731"


@pytest.fixture
def ledger_index(real_encoder):
    texts = [TARGET, *DISTRACTORS]
    docs = [Document(id=doc_id("incident", i + 1), kind="incident", ref=str(i + 1), title=t[:40], text=t, hash=str(i))
            for i, t in enumerate(texts)]
    index = KnowledgeIndex(None)
    index.upsert(docs, real_encoder.encode(texts))
    return index


def top_refs(index, mode, vector, n):
    return [index.docs[h.position].ref for h in rank(index, QUERY, vector, mode=mode).by_kind["incident"][:n]]


def test_hybrid_finds_the_incident_with_the_exact_error_code_that_dense_alone_misses(ledger_index, real_encoder):
    vector = real_encoder.encode([QUERY])[0]
    assert "1" not in top_refs(ledger_index, "dense", vector, 5)
    assert "1" in top_refs(ledger_index, "hybrid", vector, 2)


def test_dense_retrieval_matches_the_same_cause_in_other_words(real_encoder):
    texts = ["The worker was killed by the kernel because it ran out of memory",
             "The partner's TLS certificate expired at midnight",
             "A deadlock between two jobs updating the orders table"]
    docs = [Document(id=doc_id("incident", i + 1), kind="incident", ref=str(i + 1), title=t, text=t, hash=str(i))
            for i, t in enumerate(texts)]
    index = KnowledgeIndex(None)
    index.upsert(docs, real_encoder.encode(texts))
    query = "Pod OOMKilled, exit code 137, container exceeded its RAM limit"
    ranked = rank(index, query, real_encoder.encode([query])[0], mode="dense")
    assert index.docs[ranked.by_kind["incident"][0].position].ref == "1"
