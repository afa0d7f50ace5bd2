"""Pages of the platform app.

- For platform admins (403 for everyone else): health of the database, broker and beat; the
  workers with their queues, active and reserved tasks, and queue depths; step types; teams,
  people and roles. Connections, the knowledge index and the audit log are linked to the pages
  of the apps that own them.
- For everyone signed in: home (what needs the person now), the console-wide search, and the
  workflow editor's live panels
  (graph and dry run, catalog snippets, the form mode), which save nothing: the YAML they return
  is saved by the workflows app's editor through `save_version`.
"""

import json
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Prefetch, Q
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from apps.accounts.access import require_platform_admin
from apps.accounts.models import Membership, Team, User
from apps.catalog.registry import all_step_types, get_step_type
from apps.monitoring.broker_queues import known_queues
from apps.platform import health
from apps.platform.overview import SEARCH_KINDS, home_panels, search
from apps.workflows import editor
from apps.workflows.services import get_workflow_for_user, teams_where_author

PAGE_SIZE = 25
SEARCH_PREVIEW = 5


def _admin_only(view):
    @wraps(view)
    def guarded(request, *args, **kwargs):
        require_platform_admin(request.user)
        return view(request, *args, **kwargs)

    return login_required(guarded)


# --- Platform admin pages -----------------------------------------------------------------------


@_admin_only
def overview(request):
    return render(request, "platform/overview.html", {
        "checks": health.health_checks(), "step_type_count": len(all_step_types()),
        "team_count": Team.objects.count(), "people_count": User.objects.filter(is_active=True).count(),
    })


@_admin_only
def workers(request):
    """The page opens at once; the report, which waits for workers to answer, loads into it."""
    if not request.htmx:
        return render(request, "platform/workers.html", {"timeout": health.INSPECT_TIMEOUT_SECONDS})
    report = health.worker_report()
    queues = sorted(set(known_queues()) | {q for w in report.workers for q in w.queues})
    return render(request, "platform/workers.html#report", {
        "report": report, "depths": health.queue_depths(queues, report.workers),
    })


@_admin_only
def step_types(request):
    page = Paginator(all_step_types(), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "platform/step_types.html", {"page": page})


@_admin_only
def people(request):
    teams = Team.objects.annotate(people=Count("memberships__user", distinct=True)).order_by("name")
    users = User.objects.order_by("username").prefetch_related(
        Prefetch("memberships", queryset=Membership.objects.select_related("team")))
    query = request.GET.get("q", "").strip()
    if query:
        users = users.filter(Q(username__icontains=query) | Q(email__icontains=query)
                             | Q(first_name__icontains=query) | Q(last_name__icontains=query))
    return render(request, "platform/people.html", {
        "teams": Paginator(teams, PAGE_SIZE).get_page(request.GET.get("teams_page")),
        "users": Paginator(users, PAGE_SIZE).get_page(request.GET.get("page")), "query": query,
    })


# --- Home and search ----------------------------------------------------------------------------


@login_required
def home(request):
    """What needs the person now: approvals waiting for them, runs needing attention, their
    teams' recent runs, with search across the console (panels from apps.platform.overview)."""
    return render(request, "platform/home.html", {
        "panels": home_panels(request.user),
        # Ordered here: Membership's default order joins the user too.
        "memberships": Membership.objects.filter(user=request.user).select_related("team")
        .order_by("team__name", "role"),
    })


@login_required
def search_page(request):
    query, kind = request.GET.get("q", "").strip(), request.GET.get("kind", "")
    context = {"query": query, "kind": kind if kind in SEARCH_KINDS else "", "kinds": SEARCH_KINDS}
    if query and context["kind"]:
        context["page"] = Paginator(search(request.user, query, kind), PAGE_SIZE).get_page(request.GET.get("page"))
    elif query:
        context["sections"] = [(name, list(search(request.user, query, name)[:SEARCH_PREVIEW + 1]))
                               for name in SEARCH_KINDS]
    return render(request, "platform/search.html", context | {"preview_size": SEARCH_PREVIEW})


# --- The workflow editor's live panels ----------------------------------------------------------------


def _require_author(user) -> None:
    if not teams_where_author(user).exists():
        raise PermissionDenied("You need the author role in a team to write workflows. Ask a platform admin for it.")


def _workflow_from(request):
    pk = request.POST.get("workflow") or request.GET.get("workflow")
    return get_workflow_for_user(request.user, pk) if pk else None


@login_required
@require_POST
def editor_preview(request):
    """The graph and the dry run of the YAML being edited (an htmx fragment)."""
    _require_author(request.user)
    return render(request, "platform/_editor_preview.html",
                  editor.preview(request.POST.get("source", ""), _workflow_from(request)))


def _step_type_or_404(name: str):
    step = get_step_type(name)
    if step is None:
        raise Http404(f"There is no step type {name!r}: pick one from the list.")
    return step


@login_required
def editor_step_form(request):
    """Form mode: the form built from a step type's parameter schema (an htmx fragment)."""
    _require_author(request.user)
    name = request.GET.get("type", "")
    step = _step_type_or_404(name) if name else None
    fields, yaml_only = editor.step_form_fields(step) if step else ([], [])
    return render(request, "platform/_step_form.html", {
        "step": step, "fields": fields, "yaml_only": yaml_only, "step_types": all_step_types(),
        "step_id": editor.default_step_id(step.name) if step else "",
    })


@login_required
@require_POST
def editor_add_step(request):
    """Add a step (a catalog example, or the form mode's values) to the YAML being edited.

    Answers 204 with the new YAML in an `HX-Trigger` event the editor applies, or the form with
    the problem to fix (200, so htmx shows it).
    """
    _require_author(request.user)
    step = _step_type_or_404(request.POST.get("type", ""))
    source = request.POST.get("source", "")
    if request.POST.get("mode") == "form":
        fields, yaml_only = editor.step_form_fields(step)
        try:
            params = editor.params_from_form(fields, request.POST)
        except editor.FormValueError as problem:
            return render(request, "platform/_step_form.html", {
                "step": step, "fields": fields, "yaml_only": yaml_only, "step_types": all_step_types(),
                "step_id": request.POST.get("step_id", ""), "error": str(problem), "submitted": request.POST,
            })
        entry = {"id": request.POST.get("step_id", "").strip() or editor.default_step_id(step.name), "type": step.name}
        needs = request.POST.get("needs", "").split(",")
        if any(need.strip() for need in needs):
            entry["needs"] = [need.strip() for need in needs if need.strip()]
        if params:
            entry["with"] = params
    else:
        entry = editor.example_entry(step)
    entry["id"] = editor.unique_step_id(source, entry["id"])
    added = editor.append_step(source, entry)
    response = HttpResponse(status=204)
    response["HX-Trigger"] = json.dumps({"fd:step-added": {"source": added.source, "line": added.first_line,
                                                           "step": entry["id"]}})
    return response
