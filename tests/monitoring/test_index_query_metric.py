"""/metrics counts the queries the knowledge index serves, through the knowledge app's own
public function (a small hashing encoder stands in for the embedding model)."""

import re

import pytest

from apps.knowledge import indexing
from apps.knowledge.embedding import use_encoder
from apps.knowledge.suggest import suggest_for_failure
from tests.knowledge.conftest import resolved_incident
from tests.knowledge.fakes import HashingEncoder


@pytest.fixture
def knowledge_index(settings, tmp_path, team):
    settings.VAR_DIR = tmp_path
    indexing._reader = None
    with use_encoder(HashingEncoder()):
        resolved_incident(team, "Landing zone full", "OSError Errno 28 No space left on device", "disk-full")
        indexing.build_index()
        yield
    indexing._reader = None


def test_a_suggestion_query_shows_in_the_scrape(client, settings, knowledge_index, viewer,
                                                django_capture_on_commit_callbacks):
    settings.FLOWDECK_METRICS_TOKEN = "scrape-me"

    def index_queries() -> float:
        text = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me").content.decode()
        return float(re.search(r"^flowdeck_index_queries_total (\S+)$", text, re.M).group(1))

    before = index_queries()
    with django_capture_on_commit_callbacks(execute=True):
        suggestions = suggest_for_failure("copy failed: No space left on device", user=viewer)
    assert suggestions.index_ready
    assert index_queries() == before + 1
