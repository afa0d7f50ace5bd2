"""Turning database rows into index documents: full rebuilds and incremental updates.

Indexed: resolved incidents (their symptom and diagnosis), runbook sections, and root-cause
category descriptions. Open incidents are not knowledge yet. Writes go through
`index.writing()` (one writer at a time across processes); reads through `reader()`.
"""

from pathlib import Path

from django.utils import timezone

from apps.incidents.models import Incident, IncidentStatus, RootCauseCategory
from apps.knowledge import adaptation
from apps.knowledge.embedding import embed_documents, get_encoder
from apps.knowledge.index import Document, IndexReader, KnowledgeIndex, doc_id, writing
from apps.knowledge.models import IndexBuild, RunbookSection
from apps.knowledge.spaces import adopted_space, index_map, space_map
from apps.knowledge.textproc import content_hash, normalize_signature
from apps.paths import knowledge_directory


def index_directory() -> Path:
    return knowledge_directory() / "index"


_reader: IndexReader | None = None


def reader() -> IndexReader:
    global _reader
    if _reader is None or _reader.directory != index_directory():
        _reader = IndexReader(index_directory())
    return _reader


# Long enough for a post-mortem of several pages; beyond it a text is usually logs.
TEXT_LIMIT = 20_000


def incident_text(title: str, text: str, error_message: str = "", root_cause: str = "") -> str:
    signature = normalize_signature(error_message) if error_message else ""
    return "\n".join(p for p in (title, text[:TEXT_LIMIT], signature, root_cause[:TEXT_LIMIT // 4]) if p)


def failure_query(text: str, error_signature: str | None = None) -> str:
    """What a failure is asked as: its text and its normalized error signature."""
    return "\n".join(p for p in (text, normalize_signature(error_signature or "")) if p)


def incident_query(incident: Incident) -> str:
    """An incident asked as a query, as its page asks it: the failure, not the later diagnosis."""
    text = incident_text(incident.title, incident.description or incident.log_tail[-1500:], incident.error_message)
    return failure_query(text, incident.error_signature or incident.error_message)


def incident_document(incident: Incident) -> Document:
    text = incident_text(incident.title, incident.description or incident.log_tail[-1500:],
                         incident.error_message, incident.root_cause_description)
    return Document(id=doc_id("incident", incident.pk), kind="incident", ref=str(incident.pk), title=incident.title,
                    text=text, hash=content_hash(text), team_id=incident.team_id,
                    category=incident.root_cause_category.slug if incident.root_cause_category else "")


def section_document(section: RunbookSection) -> Document:
    text = f"{section.runbook.title}\n{section.heading}\n{section.body}"
    return Document(id=doc_id("runbook", section.pk), kind="runbook", ref=str(section.pk),
                    title=f"{section.runbook.title} › {section.heading}", text=text, hash=content_hash(text),
                    category=section.runbook.category)


def category_document(category: RootCauseCategory) -> Document:
    text = f"{category.name}\n{category.description}"
    return Document(id=doc_id("category", category.pk), kind="category", ref=category.slug, title=category.name,
                    text=text, hash=content_hash(text), category=category.slug)


def _all_documents() -> list[Document]:
    incidents = (Incident.objects.filter(status=IncidentStatus.RESOLVED, root_cause_category__isnull=False)
                 .select_related("root_cause_category"))
    sections = RunbookSection.objects.select_related("runbook")
    return ([incident_document(i) for i in incidents.iterator()] + [section_document(s) for s in sections]
            + [category_document(c) for c in _described_categories()])


def _described_categories():
    """Categories whose description is knowledge: a label an import brought with no description is
    known by its incidents and its name (fusion.label_vectors), not by a document of its name alone."""
    return RootCauseCategory.objects.filter(is_active=True).exclude(description="")


def _embed(documents: list[Document], progress=None):
    return embed_documents([d.text for d in documents], progress=progress)


def build_index(requested_by=None, progress=None) -> IndexBuild:
    """Re-embed (from cache where possible) and rewrite the whole index."""
    build = IndexBuild.objects.create(kind=IndexBuild.Kind.FULL, requested_by=requested_by, model=get_encoder().name)
    documents = _all_documents()
    counter = {"embedded": 0}

    def count(n):
        counter["embedded"] += n
        if progress:
            progress(n)

    # A full rebuild is where an adopted space (adoption.py) takes effect: every vector goes into it.
    space = adopted_space()
    vectors = adaptation.apply(space_map(space), _embed(documents, progress=count))
    with writing(index_directory()) as index:
        fresh = KnowledgeIndex(index.directory)
        fresh.meta = index.meta
        fresh.upsert(documents, vectors)
        fresh.save(model=get_encoder().name, built_at=timezone.now().isoformat(), kind="full", space=space)
    build.documents, build.finished_at = len(documents), timezone.now()
    build.embedded = counter["embedded"]
    build.save(update_fields=["documents", "finished_at", "embedded"])
    return build


def update_documents(upserts: list[Document], removed_ids=()) -> IndexBuild:
    """Add or replace some documents and drop others, leaving the rest of the index as it is."""
    build = IndexBuild.objects.create(kind=IndexBuild.Kind.INCREMENTAL, model=get_encoder().name)
    vectors = _embed(upserts)
    with writing(index_directory()) as index:
        index.remove(set(removed_ids) | {d.id for d in upserts})
        if upserts:
            index.upsert(upserts, adaptation.apply(index_map(index), vectors))  # the space the index is in
        index.save(model=get_encoder().name, updated_at=timezone.now().isoformat())
        build.documents = len(index)
    build.embedded, build.finished_at = len(upserts), timezone.now()
    build.save(update_fields=["documents", "finished_at", "embedded"])
    return build


def reindex_incidents(incident_ids) -> IndexBuild:
    incidents = (Incident.objects.filter(pk__in=incident_ids).select_related("root_cause_category"))
    upserts = [incident_document(i) for i in incidents if i.is_resolved and i.root_cause_category_id]
    gone = {doc_id("incident", pk) for pk in incident_ids} - {d.id for d in upserts}
    return update_documents(upserts, gone)


def reindex_runbooks(runbook_ids, removed_section_ids=()) -> IndexBuild:
    sections = RunbookSection.objects.filter(runbook_id__in=runbook_ids).select_related("runbook")
    removed = {doc_id("runbook", pk) for pk in removed_section_ids}
    return update_documents([section_document(s) for s in sections], removed)


def reindex_categories() -> IndexBuild:
    described = list(_described_categories())
    others = {doc_id("category", pk) for pk in RootCauseCategory.objects.exclude(pk__in=[c.pk for c in described])
              .values_list("pk", flat=True)}
    return update_documents([category_document(c) for c in described], others)
