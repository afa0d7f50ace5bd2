"""The index learns its evidence weights from the team's resolved incidents, and every process uses them."""

import itertools

import pytest

from apps.incidents.services import category_for_label
from apps.knowledge import indexing
from apps.knowledge.index import IndexReader
from apps.knowledge.learning import learn_fusion
from apps.knowledge.ranking import FEATURES
from apps.knowledge.suggest import suggest_for_failure
from tests.knowledge.conftest import resolved_incident

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.knowledge.urls")]

# A team's own labels, none of which we ship a description for, each worded several ways.
HISTORY = {
    "Vendor API timeouts": ["partner gateway timed out after 30 seconds", "upstream vendor endpoint stopped answering",
                            "carrier api request hung until the socket timeout"],
    "Mapping mistakes": ["column mapping sent amounts into the quantity field", "wrong field mapping for currency codes",
                         "the mapping sheet swapped region and country"],
    "Late partner files": ["supplier file arrived four hours after the cutoff", "the nightly drop from the bank was late",
                           "inventory extract from the warehouse landed after the window"],
}


@pytest.fixture
def team_history(team):
    for label, texts in HISTORY.items():
        category_for_label(label)
        for number, (text, host) in enumerate(itertools.product(texts, ("eu", "us", "apac", "latam"))):
            resolved_incident(team, f"{label} #{number}", f"{text} on {host}-etl", category_for_label(label).slug)


def test_weights_are_learned_recorded_with_the_index_and_seen_by_another_process(team_history, fake_encoder,
                                                                                   client_for, platform_admin):
    indexing.build_index()
    serving = indexing.reader().get()  # a process already serving suggestions
    learned = learn_fusion()

    assert learned.weights is not None and set(learned.weights) == set(FEATURES)
    # It takes the weights over without reloading the documents (same index object, same version).
    assert indexing.reader().get() is serving and serving.meta["fusion"]["examples"] == 36
    assert learned.examples == 36
    # Another process (a fresh reader of the same directory) loads the new version with the weights.
    other = IndexReader(indexing.index_directory()).get()
    assert other.meta["fusion"]["features"] == list(FEATURES) and other.meta["fusion"]["examples"] == 36

    hypotheses = suggest_for_failure("the supplier file from the bank arrived after the cutoff again").hypotheses
    assert hypotheses[0].name == "Late partner files"
    assert sum(h.confidence for h in hypotheses) <= 1.0 + 1e-6

    page = client_for(platform_admin).get("/knowledge/admin/").content.decode()
    assert "Learned from 36 resolved incidents" in page and "label" in page


def test_with_too_little_history_the_fixed_weights_stay_and_the_admin_page_says_so(team, fake_encoder, client_for,
                                                                                   platform_admin):
    resolved_incident(team, "Landing zone full", "No space left on device", "disk-full")
    indexing.build_index()

    assert learn_fusion().weights is None
    assert "fusion" not in IndexReader(indexing.index_directory()).get().meta
    page = client_for(platform_admin).get("/knowledge/admin/").content.decode()
    assert "Fixed weights" in page


def test_an_imported_label_without_a_description_is_known_by_its_incidents_not_a_document_of_its_name(
        team, fake_encoder):
    imported = category_for_label("Vendor API timeouts")
    resolved_incident(team, "Gateway timeout", "partner gateway timed out", imported.slug)
    indexing.build_index()
    categories = {doc.category for doc in indexing.reader().get().docs if doc.kind == "category"}
    assert "disk-full" in categories and imported.slug not in categories

    from apps.incidents.services import save_category

    save_category(None, slug=imported.slug, name=imported.name,
                  description="A partner's API does not answer within our timeout.")
    indexing.reindex_categories()
    categories = {doc.category for doc in indexing.reader().get().docs if doc.kind == "category"}
    assert imported.slug in categories
