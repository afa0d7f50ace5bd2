"""Incident pages: the list, the detail page with suggestions, opening, owning and resolving,
and the root-cause taxonomy for platform admins."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST, require_safe

from apps.accounts.access import require_platform_admin, team_ids_with_role, visible_teams
from apps.accounts.models import Role, Team
from apps.incidents import services
from apps.incidents.access import get_incident_for_user, may_triage, visible_incidents
from apps.incidents.forms import CategoryForm, IncidentFilterForm, OpenIncidentForm, ResolveForm
from apps.incidents.groups import failure_groups
from apps.incidents.models import RootCauseCategory


@login_required
def incident_list(request):
    form = IncidentFilterForm(request.GET or None)
    incidents = visible_incidents(request.user).select_related("team", "root_cause_category", "owner")
    if form.is_valid():
        if form.cleaned_data["status"]:
            incidents = incidents.filter(status=form.cleaned_data["status"])
        if form.cleaned_data["team"] == "shared":
            incidents = incidents.filter(team__isnull=True)
        elif form.cleaned_data["team"]:
            incidents = incidents.filter(team__slug=form.cleaned_data["team"])
        if form.cleaned_data["category"]:
            incidents = incidents.filter(root_cause_category__slug=form.cleaned_data["category"])
    page = Paginator(incidents, 25).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    groups = failure_groups(request.user)
    _mark_grouped(page, groups)
    if request.htmx:
        return render(request, "incidents/list.html#results", {"page": page, "query": query.urlencode()})
    return render(request, "incidents/list.html", {
        "form": form, "page": page, "query": query.urlencode(), "teams": visible_teams(request.user),
        "categories": RootCauseCategory.objects.all(), "groups": groups,
    })


def _mark_grouped(page, groups) -> None:
    """Each incident of the page that belongs to an open failure group (`failure_group`), so its row links the group."""
    group_of = {incident_id: group for group in groups for incident_id in group.incident_ids}
    for incident in page.object_list:
        incident.failure_group = group_of.get(incident.pk)


@login_required
@require_safe
def incident_detail(request, pk: int):
    from apps.knowledge.incident_ranking import investigation_of, ranking_for

    incident = get_incident_for_user(request.user, pk)
    facts = investigation_of(incident)
    return render(request, "incidents/detail.html", {
        "incident": incident, "facts": facts, "investigated": bool(incident.run_id and incident.step_id),
        "suggestions": ranking_for(incident, facts=facts), "can_triage": may_triage(request.user, incident),
        "resolve_form": ResolveForm(), "occurrences": incident.occurrence_log.all()[:20],
        "summary": getattr(incident, "llm_summary", None),
    })


@login_required
def open_incident(request):
    team_ids = team_ids_with_role(request.user, Role.OPERATOR)
    teams = Team.objects.all() if team_ids is None else Team.objects.filter(pk__in=team_ids)
    form = OpenIncidentForm(request.POST or None, teams=teams)
    if request.method == "POST" and form.is_valid():
        incident = services.open_incident(request.user, **form.cleaned_data)
        messages.success(request, "Incident opened. Suggestions below come from similar past incidents.")
        return redirect("incidents:detail", incident.pk)
    if not teams.exists():
        messages.error(request, "You need the operator role in a team to open incidents; ask a team admin.")
    return render(request, "incidents/open.html", {"form": form})


@login_required
@require_POST
def take_ownership(request, pk: int):
    incident = get_incident_for_user(request.user, pk, triage=True)
    try:
        services.take_ownership(request.user, incident.pk)
    except services.IncidentError as exc:
        return _conflict(request, incident, exc)
    messages.success(request, "You own this incident now; its status is Investigating.")
    return redirect("incidents:detail", pk)


def _conflict(request, incident, exc):
    return render(request, "incidents/conflict.html", {"incident": incident, "message": str(exc)}, status=409)


@login_required
@require_POST
def resolve(request, pk: int):
    incident = get_incident_for_user(request.user, pk, triage=True)
    form = ResolveForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a root-cause category and describe the cause and the fix.")
        return redirect("incidents:detail", pk)
    try:
        services.resolve(request.user, incident.pk, category=form.cleaned_data["category"],
                         root_cause_description=form.cleaned_data["root_cause_description"],
                         resolution=form.cleaned_data["resolution"])
    except services.IncidentError as exc:
        return _conflict(request, incident, exc)
    messages.success(request, "Resolved. The assistant will learn from this incident.")
    return redirect("incidents:detail", pk)


@login_required
def categories(request):
    require_platform_admin(request.user)
    editing = None
    if request.GET.get("edit"):
        editing = get_object_or_404(RootCauseCategory, slug=request.GET["edit"])
    form = CategoryForm(request.POST or None, instance=editing)
    if request.method == "POST":
        existing = RootCauseCategory.objects.filter(slug=request.POST.get("slug", "")).first()
        form = CategoryForm(request.POST, instance=existing)
        if form.is_valid():
            services.save_category(request.user, **{k: form.cleaned_data[k]
                                                    for k in ("slug", "name", "description", "is_active")})
            messages.success(request, "Category saved. The index picks up the new description on its next update.")
            return redirect("incidents:categories")
    return render(request, "incidents/categories.html", {
        "form": form, "categories": RootCauseCategory.objects.all(), "editing": editing})
