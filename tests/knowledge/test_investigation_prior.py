"""What the investigation of a failure found weighs in its ranking, boundedly: a connection changed
since the last success raises "config change"; a failure without run history ranks as before."""

import pytest

from apps.incidents.models import Incident
from apps.knowledge import indexing, suggest
from apps.knowledge.incident_ranking import MAX_PRIOR, category_prior, investigation_of, ranking_for
from tests.knowledge.conftest import resolved_incident
from tests.runs.test_investigation import ERROR, changed_failure, warehouse  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(team):
    # The team's history points at capacity for this error, clearly; a configuration change once.
    for category in ("capacity", "capacity", "config-change"):
        resolved_incident(team, "Query failed", f"query failed: {ERROR}", category)


def confidence(suggestions, category):
    return next(h.confidence for h in suggestions.hypotheses if h.category == category)


def position(suggestions, category):
    return [h.category for h in suggestions.hypotheses].index(category)


def test_a_connection_changed_since_the_last_success_raises_config_change(changed_failure, history, fake_encoder,
                                                                         monkeypatch):
    monkeypatch.setattr(suggest, "HEADLINE_THRESHOLD", 0.0)
    indexing.build_index()
    incident = Incident.objects.get(run_id=changed_failure[1].run_id)
    facts = investigation_of(incident)
    assert "connection" in {fact.kind for fact in facts}

    without = ranking_for(incident, facts=[], compute=True)
    found = ranking_for(incident, compute=True)

    assert without.prior == {} and found.prior == category_prior(facts)
    assert found.prior["config-change"] == MAX_PRIOR  # connection, version and parameters, capped
    assert position(found, "config-change") < position(without, "config-change")
    assert confidence(found, "config-change") > 2 * confidence(without, "config-change")
    # Bounded: what the history clearly points at keeps its place.
    assert found.hypotheses[0].category == without.hypotheses[0].category == "capacity"
    raised = found.hypotheses[position(found, "config-change")]
    assert any(c.label.startswith("Found: Connection “warehouse” changed") for c in raised.citations)
    assert not any(c.label.startswith("Found:") for c in found.hypotheses[0].citations)
    # The stored ranking is the one every page shows: asked again, the same.
    assert ranking_for(incident) == found


def test_the_prior_is_capped_per_category():
    from apps.runs.investigation import Fact

    facts = [Fact("connection", "a", hints={"config-change": 0.8}), Fact("queue", "b", hints={"config-change": 0.3,
                                                                                              "capacity": 0.2})]
    assert category_prior(facts) == {"capacity": 0.2, "config-change": MAX_PRIOR}
    assert category_prior([]) == {}
