"""Pages of the monitoring app: alerts, a workflow's anomaly thresholds, datasets' lineage and
the SLA partial of the run page. Fetches are team-scoped (404 outside a person's teams, 403
without the role); changes go through `services`."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.accounts.access import get_for_user, has_role, scope_to_user
from apps.accounts.models import Role
from apps.monitoring import lineage, services
from apps.monitoring.forms import MonitorSettingsForm
from apps.monitoring.models import Alert, AlertState, SlaStatus
from apps.runs.models import Run
from apps.workflows.models import Workflow

PER_PAGE = 25


@login_required
def alert_list(request):
    state = request.GET.get("state", AlertState.OPEN)
    alerts = scope_to_user(Alert.objects.select_related("workflow", "team"), request.user)
    if state in AlertState.values:
        alerts = alerts.filter(state=state)
    template = "monitoring/alerts.html#results" if request.htmx else "monitoring/alerts.html"
    return render(request, template, {"page": Paginator(alerts, PER_PAGE).get_page(request.GET.get("page")),
                                      "state": state, "states": AlertState.choices})


@login_required
def alert_detail(request, pk):
    alert = get_for_user(Alert.objects.select_related("workflow", "team", "run", "acknowledged_by"), request.user, pk)
    return render(request, "monitoring/alert.html", {
        "alert": alert, "can_close": has_role(request.user, alert.team, Role.OPERATOR)})


@login_required
@require_POST
def alert_close(request, pk):
    alert = get_for_user(Alert.objects.all(), request.user, pk, role=Role.OPERATOR)
    try:
        services.resolve_alert(request.user, alert.pk, reason="closed by hand")
        messages.success(request, "Alert closed. If the problem happens again a new alert opens.")
    except services.AlertError as exc:
        messages.info(request, str(exc))
    return redirect("monitoring:alert", pk=alert.pk)


@login_required
@require_POST
def alert_acknowledge(request, pk):
    alert = get_for_user(Alert.objects.all(), request.user, pk, role=Role.OPERATOR)
    try:
        services.acknowledge_alert(request.user, alert.pk)
        messages.success(request, "Acknowledged: the team sees you are on it. Close the alert once it is fixed.")
    except services.AlertError as exc:
        messages.info(request, str(exc))
    return redirect("monitoring:alert", pk=alert.pk)


@login_required
def monitor_settings(request, workflow_pk):
    role = Role.AUTHOR if request.method == "POST" else None
    workflow = get_for_user(Workflow.objects.select_related("team"), request.user, workflow_pk, role=role)
    form = MonitorSettingsForm(request.POST or None, instance=services.settings_for(workflow))
    if request.method == "POST":
        if form.is_valid():
            services.save_settings(request.user, workflow, **{f: form.cleaned_data[f] for f in form.Meta.fields})
            messages.success(request, "Monitor thresholds saved; they apply from the next finished run.")
            return redirect("monitoring:settings", workflow_pk=workflow.pk)
    return render(request, "monitoring/settings.html", {
        "workflow": workflow, "form": form, "can_edit": has_role(request.user, workflow.team, Role.AUTHOR)})


@login_required
def dataset_list(request):
    search = request.GET.get("q", "").strip()
    page = Paginator(lineage.visible_datasets(request.user, search), PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "monitoring/datasets.html", {"page": page, "search": search})


@login_required
def dataset_detail(request):
    uri = request.GET.get("uri", "")
    usage = Paginator(lineage.dataset_usage(request.user, uri), PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "monitoring/dataset.html", {"uri": uri, "usage": usage})


@login_required
def run_sla(request, run_pk):
    """The partial the run page includes: the run's SLA status and its prediction."""
    run = get_for_user(Run.objects.all(), request.user, run_pk)
    return render(request, "monitoring/_run_sla.html", {"run": run,
                                                         "sla": SlaStatus.objects.filter(run=run).first()})
