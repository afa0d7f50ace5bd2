"""The knowledge page shows, week by week, how often the headline guess was the confirmed root cause
and how often a checkpoint decision followed the assistant, and the last evaluation's figures;
it passes axe in both colour schemes and on a phone (screenshots in var/screenshots)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.browser.test_accessibility import LAPTOP, PHONE, violations
from tests.runs.factories import make_version, step

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
DEADLOCK = "ORA-00060 deadlock detected while waiting for resource on orders merge"


@pytest.fixture
def small_encoder(settings, tmp_path):
    """The index under a temporary VAR_DIR, embedded by a small encoder (as tests/knowledge do)."""
    from apps.knowledge import indexing
    from apps.knowledge.embedding import use_encoder
    from tests.knowledge.fakes import HashingEncoder

    settings.VAR_DIR, indexing._reader = tmp_path, None
    with use_encoder(HashingEncoder()):
        yield
    indexing._reader = None


@pytest.fixture
def practice(team, operator, drive, small_encoder, monkeypatch):
    """Three weeks of confirmations and decisions, and an evaluation of two labelled sets."""
    from apps.approvals import services as approvals
    from apps.approvals.models import ApprovalRequest, Decision
    from apps.incidents.models import Incident
    from apps.knowledge import indexing, suggest
    from apps.knowledge.incident_ranking import ranking_for
    from apps.knowledge.models import EvaluationResult, Feedback
    from apps.knowledge.services import give_feedback
    from apps.runs import engine
    from tests.knowledge.conftest import resolved_incident

    from apps.incidents.models import RootCauseCategory
    from apps.incidents.taxonomy import DEFAULT_CATEGORIES

    for slug, name, description in DEFAULT_CATEGORIES:  # the migration's seed, gone after an earlier flush
        RootCauseCategory.objects.get_or_create(slug=slug, defaults={"name": name, "description": description})
    for _ in range(2):
        resolved_incident(team, "Deadlock in orders merge", DEADLOCK, "lock-contention")
    resolved_incident(team, "Landing zone full", "OSError Errno 28 No space left on device", "disk-full")
    indexing.build_index()
    monkeypatch.setattr(suggest, "HEADLINE_THRESHOLD", 0.0)
    outcomes = [("lock-contention", "retry"), ("disk-full", "skip"), ("lock-contention", "retry"),
                ("lock-contention", "retry"), ("disk-full", "abort"), (None, "retry")]
    for number, (confirmed, choice) in enumerate(outcomes):
        # A workflow each: a failure of the same workflow and step would join the open incident.
        version = make_version(team, [step("merge", "test.fail", params={"message": DEADLOCK},
                                           on_failure="pause")], name=f"orders-{number}")
        checkpoint = ApprovalRequest.objects.get(run=drive(engine.start_run(operator, version)), kind="checkpoint")
        incident = Incident.objects.get(run_id=checkpoint.run_id)
        ranking_for(incident)
        if confirmed:
            give_feedback(operator, incident, target_kind="hypothesis", target_ref=confirmed, verdict="root_cause")
        approvals.decide_checkpoint(operator, checkpoint, choice, reason_code="other", comment="checked")
        weeks_ago = timezone.now() - timedelta(weeks=number // 2)
        Feedback.objects.filter(incident=incident).update(created_at=weeks_ago)
        Decision.objects.filter(request=checkpoint).update(decided_at=weeks_ago)
    for dataset, top1, precision in (("dev_set.jsonl", 0.812, 0.871), ("postmortem_style.jsonl", 0.689, 0.852)):
        EvaluationResult.objects.create(dataset=dataset, mode="hybrid", folds=5, incidents=120, top1=top1, top3=0.93,
                                        mrr=0.85, same_category_in_top5=0.9, baseline_top1=0.1, ece=0.041,
                                        threshold=0.58, headline_precision=precision, coverage=0.655)


@pytest.mark.parametrize("scheme,screen", [("light", "laptop"), ("dark", "laptop"), ("light", "phone")])
def test_the_knowledge_page_shows_the_rates_over_time(open_page, live_server, platform_admin, practice, scheme,
                                                      screen, screenshot):
    page = open_page(platform_admin, color_scheme=scheme, viewport=PHONE if screen == "phone" else LAPTOP)
    page.goto(f"{live_server.url}/knowledge/admin/")
    weeks = page.locator("table.practice tbody tr")
    assert "50% (1 of 2)" in weeks.nth(0).inner_text().replace("\n", " ")  # this week: one guess of two right
    assert "100% (2 of 2)" in weeks.nth(1).inner_text().replace("\n", " ")
    assert "1 cannot be told" in weeks.nth(2).inner_text()
    assert "0.871" in page.locator("section", has=page.locator("#last-eval-h")).inner_text()
    screenshot(page, f"knowledge-admin-{scheme}-{screen}")
    assert violations(page) == []
