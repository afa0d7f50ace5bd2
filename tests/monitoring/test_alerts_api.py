"""The alerts REST API: team-scoped lists with filters, acknowledge and resolve through the
domain functions (operator role), 404 outside a person's teams, documented in the OpenAPI schema."""

import pytest

from apps.audit.models import AuditEvent
from apps.monitoring import services
from apps.monitoring.models import Alert, AlertKind, AlertState


@pytest.fixture
def alerts(make_workflow, team, other_team, notified):
    """Two open alerts of Billing (an anomaly on `usage`, a paused run on `payroll`), one closed,
    and one open alert of People Ops."""
    usage = make_workflow([], name="usage")
    payroll = make_workflow([], name="payroll")
    hiring = make_workflow([], name="hiring", owner=other_team)

    def raise_one(team, workflow, kind, key):
        return services.raise_alert(team=team, kind=kind, dedup_key=key, workflow=workflow, title=f"{key} happened")[0]

    made = {
        "anomaly": raise_one(team, usage, AlertKind.ANOMALY, "anomaly:usage"),
        "paused": raise_one(team, payroll, AlertKind.RUN_PAUSED, "run_paused:payroll"),
        "closed": raise_one(team, usage, AlertKind.SLA_AT_RISK, "sla_at_risk:usage"),
        "other": raise_one(other_team, hiring, AlertKind.ANOMALY, "anomaly:hiring"),
    }
    services.close_alert("sla_at_risk:usage", reason="met")
    return made


def ids(response):
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def test_an_operator_lists_the_alerts_of_their_team_only(api_for, operator, alerts):
    api = api_for(operator)
    assert ids(api.get("/api/v1/alerts")) == {alerts[k].pk for k in ("anomaly", "paused", "closed")}
    assert ids(api.get("/api/v1/alerts", {"state": "open"})) == {alerts["anomaly"].pk, alerts["paused"].pk}
    assert ids(api.get("/api/v1/alerts", {"kind": "run_paused"})) == {alerts["paused"].pk}
    assert ids(api.get("/api/v1/alerts", {"workflow": alerts["anomaly"].workflow_id, "state": "open"})) \
        == {alerts["anomaly"].pk}
    row = api.get(f"/api/v1/alerts/{alerts['paused'].pk}").json()
    assert row["kind"] == "run_paused" and row["team"] == "billing" and row["workflow_name"] == "payroll"


def test_a_filter_value_that_does_not_exist_is_a_clear_400(api_for, operator, alerts):
    response = api_for(operator).get("/api/v1/alerts", {"kind": "fire"})
    assert response.status_code == 400 and "'fire' is not one of" in response.json()["kind"]


def test_an_operator_acknowledges_then_resolves_an_alert(api_for, operator, alerts):
    api, alert = api_for(operator), alerts["anomaly"]
    acknowledged = api.post(f"/api/v1/alerts/{alert.pk}/acknowledge")
    assert acknowledged.status_code == 200
    assert acknowledged.json()["acknowledged_by"] == operator.username and acknowledged.json()["state"] == "open"
    again = api.post(f"/api/v1/alerts/{alert.pk}/acknowledge")
    assert again.status_code == 409 and "already acknowledged" in again.json()["detail"]
    resolved = api.post(f"/api/v1/alerts/{alert.pk}/resolve", {"reason": "bad upstream file replaced"}, format="json")
    assert resolved.status_code == 200 and resolved.json()["state"] == "closed"
    assert api.post(f"/api/v1/alerts/{alert.pk}/resolve").status_code == 409
    actions = list(AuditEvent.objects.filter(object_type="monitoring.alert", object_id=str(alert.pk))
                   .values_list("action", "actor__username"))
    assert ("alert.acknowledged", operator.username) in actions and ("alert.closed", operator.username) in actions


def test_a_viewer_sees_alerts_but_cannot_acknowledge_or_resolve(api_for, viewer, alerts):
    api, alert = api_for(viewer), alerts["paused"]
    assert api.get(f"/api/v1/alerts/{alert.pk}").status_code == 200
    assert api.post(f"/api/v1/alerts/{alert.pk}/acknowledge").status_code == 403
    assert api.post(f"/api/v1/alerts/{alert.pk}/resolve").status_code == 403
    alert.refresh_from_db()
    assert alert.acknowledged_at is None and alert.state == AlertState.OPEN


def test_alerts_of_another_team_are_404(api_for, operator, alerts):
    api, theirs = api_for(operator), alerts["other"]
    assert api.get(f"/api/v1/alerts/{theirs.pk}").status_code == 404
    assert api.post(f"/api/v1/alerts/{theirs.pk}/acknowledge").status_code == 404
    assert api.post(f"/api/v1/alerts/{theirs.pk}/resolve").status_code == 404
    assert Alert.objects.get(pk=theirs.pk).state == AlertState.OPEN


def test_the_alert_page_acknowledges_through_the_same_domain_function(client_for, operator, alerts):
    alert = alerts["paused"]
    client = client_for(operator)
    page = client.post(f"/monitoring/alerts/{alert.pk}/acknowledge/", follow=True).content.decode()
    assert "Acknowledged" in page and f"by {operator.username}" in page and "Acknowledge: I am on it" not in page


def test_openapi_documents_the_alert_endpoints(client_for, operator):
    document = client_for(operator).get("/api/schema/", {"format": "json"}).json()
    assert {"/api/v1/alerts", "/api/v1/alerts/{id}", "/api/v1/alerts/{id}/acknowledge",
            "/api/v1/alerts/{id}/resolve"} <= set(document["paths"])
    kinds = next(p for p in document["paths"]["/api/v1/alerts"]["get"]["parameters"] if p["name"] == "kind")
    assert "dead_letter" in kinds["schema"]["enum"]
