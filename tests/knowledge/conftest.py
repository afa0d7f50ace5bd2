"""Knowledge tests write their index and embedding cache under a temporary VAR_DIR."""

import pytest

from tests.knowledge.fakes import HashingEncoder


@pytest.fixture(autouse=True)
def knowledge_var_dir(settings, tmp_path):
    from apps.knowledge import indexing

    settings.VAR_DIR = tmp_path
    indexing._reader = None
    yield tmp_path
    indexing._reader = None


@pytest.fixture
def fake_encoder():
    from apps.knowledge.embedding import use_encoder

    with use_encoder(HashingEncoder()) as encoder:
        yield encoder


@pytest.fixture(scope="session")
def real_encoder():
    """The real all-MiniLM-L6-v2 model, loaded once for the whole test session."""
    from apps.knowledge.embedding import SentenceTransformerEncoder

    return SentenceTransformerEncoder()


@pytest.fixture
def using_real_model(real_encoder):
    from apps.knowledge.embedding import use_encoder

    with use_encoder(real_encoder):
        yield real_encoder


def resolved_incident(team, title, text, category_slug, *, root_cause="", resolution="It was fixed.", error=""):
    from apps.incidents.models import Incident, IncidentStatus, RootCauseCategory

    return Incident.objects.create(
        team=team, title=title, description=text, error_message=error, status=IncidentStatus.RESOLVED,
        root_cause_category=RootCauseCategory.objects.get(slug=category_slug),
        root_cause_description=root_cause or f"Root cause: {category_slug}", resolution=resolution)
