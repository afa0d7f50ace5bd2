"""Above EXACT_SEARCH_LIMIT documents, dense scores come from the approximate index's candidates
only; the rest of the history has no dense score and must not be ranked as if it had one."""

from apps.knowledge import ranking
from apps.knowledge.index import Document, KnowledgeIndex, doc_id
from tests.knowledge.fakes import HashingEncoder

TEXTS = [f"incident {n}: the {word} job failed overnight" for n, word in
         enumerate(["billing", "payroll", "ledger", "invoice", "export", "import", "backup", "report"] * 3)]


def test_only_the_searchs_candidates_are_ranked_by_dense_similarity(monkeypatch):
    encoder = HashingEncoder()
    docs = [Document(id=doc_id("incident", n + 1), kind="incident", ref=str(n + 1), title=t, text=t, hash=str(n))
            for n, t in enumerate(TEXTS)]
    index = KnowledgeIndex(None)
    index.upsert(docs, encoder.encode(TEXTS))
    monkeypatch.setattr(ranking, "EXACT_SEARCH_LIMIT", 5)
    monkeypatch.setattr(ranking, "DENSE_CANDIDATES", 3)
    query = "payroll"
    vector = encoder.encode([query])[0]
    candidates = {position for position, _ in index.dense_search(vector, 3)}

    ranked = ranking.rank(index, "zzz-no-lexical-match", vector, mode="dense")
    assert {hit.position for hit in ranked.by_kind["incident"]} == candidates
    assert len(candidates) == 3
