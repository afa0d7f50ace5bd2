import json
import subprocess
import sys
from pathlib import Path

import pytest

from apps.incidents import services
from apps.incidents.models import RootCauseCategory
from apps.knowledge import indexing
from apps.knowledge.index import doc_id
from apps.knowledge.models import IndexBuild
from apps.knowledge.runbooks import sync_runbooks
from tests.knowledge.conftest import resolved_incident

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def kinds(index):
    found = {}
    for doc in index.docs:
        found[doc.kind] = found.get(doc.kind, 0) + 1
    return found


def test_build_indexes_resolved_incidents_runbook_sections_and_categories(team, fake_encoder):
    resolved_incident(team, "Disk full on lz-01", "No space left on device", "disk-full")
    services.open_incident(None, team=team, title="Still open: not knowledge yet")
    sync_runbooks()

    build = indexing.build_index()

    index = indexing.reader().get()
    assert build.documents == len(index)
    counts = kinds(index)
    assert counts["incident"] == 1
    assert counts["runbook"] >= 20 * 4
    assert counts["category"] == RootCauseCategory.objects.filter(is_active=True).count()
    assert (indexing.index_directory() / "dense.faiss").exists()


def test_resolving_an_incident_updates_the_index_incrementally(team, operator, fake_encoder,
                                                               django_capture_on_commit_callbacks, settings):
    from apps.celery import app

    resolved_incident(team, "Deadlock in orders", "ORA-00060 deadlock detected", "lock-contention")
    indexing.build_index()
    before = indexing.reader().get()
    incident = services.open_incident(operator, team=team, title="Token expired for acme API",
                                      error_message="401 invalid_token")
    app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            services.resolve(operator, incident.pk, category=RootCauseCategory.objects.get(slug="credentials-expired"),
                             root_cause_description="Partner rotated the key", resolution="New key stored")
    finally:
        app.conf.task_always_eager = False

    after = indexing.reader().get()
    assert after.version == before.version + 1
    assert len(after) == len(before) + 1
    assert after.position(doc_id("incident", incident.pk)) is not None
    assert IndexBuild.objects.filter(kind=IndexBuild.Kind.INCREMENTAL, embedded=1).exists()


SECOND_PROCESS = """
import json, sys
import numpy as np
from apps.knowledge.index import Document, IndexReader, doc_id, writing
reader = IndexReader(sys.argv[1])
seen = len(reader.get())
with writing(sys.argv[1]) as index:
    vector = np.zeros((1, index.vectors.shape[1]), dtype=np.float32)
    vector[0, 0] = 1.0
    index.upsert([Document(id=doc_id("incident", 999999), kind="incident", ref="999999", title="from child",
                           text="written by another process", hash="h", category="network")], vector)
    index.save()
print(json.dumps({"seen": seen, "version": reader.get().version}))
"""


def test_a_second_process_reads_the_index_and_its_update_is_reloaded_here(team, fake_encoder):
    resolved_incident(team, "DNS failure", "NXDOMAIN for api.acme.com", "dns")
    indexing.build_index()
    here = indexing.reader().get()

    child = subprocess.run([sys.executable, "-c", SECOND_PROCESS, str(indexing.index_directory())], cwd=ROOT,
                           capture_output=True, text=True, timeout=120, check=True)
    report = json.loads(child.stdout.strip().splitlines()[-1])

    assert report["seen"] == len(here)
    reloaded = indexing.reader().get()
    assert reloaded.version == report["version"] == here.version + 1
    assert reloaded.position(doc_id("incident", 999999)) is not None


def test_embeddings_are_cached_by_content_hash(team, fake_encoder):
    resolved_incident(team, "Rate limited", "HTTP 429 from acme", "rate-limited")
    first = indexing.build_index()
    second = indexing.build_index()
    assert first.documents == second.documents
    from apps.knowledge.embedding import EmbeddingCache

    cache = EmbeddingCache()
    hashes = [d.hash for d in indexing.reader().get().docs]
    assert len(cache.get_many(fake_encoder.name, hashes)) == len(set(hashes))


def test_changed_runbook_is_resynced_by_content_hash(tmp_path):
    folder = tmp_path / "runbooks"
    folder.mkdir()
    (folder / "a.md").write_text("---\ncategory: dns\n---\n# DNS\n## Symptoms\nNXDOMAIN\n## Fix\nRestore the record\n")
    changed, _ = sync_runbooks(folder)
    assert len(changed) == 1
    assert sync_runbooks(folder) == ([], [])
    (folder / "a.md").write_text("---\ncategory: dns\n---\n# DNS\n## Symptoms\nSERVFAIL\n")
    changed, removed = sync_runbooks(folder)
    assert len(changed) == 1 and len(removed) == 1


def test_a_new_version_is_loaded_with_its_saved_bm25_and_the_same_lexical_scores(team, fake_encoder, monkeypatch):
    from apps.knowledge.index import KnowledgeIndex

    resolved_incident(team, "Deadlock in orders merge", "ORA-00060 deadlock detected on orders", "lock-contention")
    resolved_incident(team, "Disk full on lz-01", "No space left on device", "disk-full")
    indexing.build_index()
    built = indexing.reader().get()
    folder = indexing.index_directory() / built.meta["lexical"]
    assert folder.is_dir()

    def no_tokenizing(self, *args, **kwargs):
        raise AssertionError("BM25 was built again instead of loaded")

    with monkeypatch.context() as patched:
        patched.setattr("bm25s.BM25.index", no_tokenizing)
        loaded = KnowledgeIndex.load(indexing.index_directory())
    query = "ORA-00060 deadlock while merging orders"
    assert loaded.lexical_scores(query).tolist() == built.lexical_scores(query).tolist()
    assert max(loaded.lexical_scores(query)) > 0

    # Saved BM25 that does not match the documents (or is gone) is built again, not trusted.
    import shutil

    shutil.rmtree(folder)
    rebuilt = KnowledgeIndex.load(indexing.index_directory())
    assert rebuilt.lexical_scores(query).tolist() == built.lexical_scores(query).tolist()


def test_older_bm25_folders_are_removed_when_newer_versions_are_saved(team, fake_encoder):
    resolved_incident(team, "Disk full on lz-01", "No space left on device", "disk-full")
    for _ in range(3):
        indexing.build_index()
    folders = sorted(p.name for p in indexing.index_directory().glob("lexical-*"))
    version = indexing.reader().get().version
    assert folders == [f"lexical-{version - 1}", f"lexical-{version}"]
