"""Pages of the workflows app: the list, a workflow with its versions, diffs and the YAML editor
with its live panels (graph and dry run, catalog snippets, form mode).

Every page fetches through the team-scoped helpers in `services` (404 outside a person's teams,
403 without the role) and saves only through `services.save_version`.
"""

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.views.decorators.http import require_POST

from apps.accounts.access import has_role, visible_teams
from apps.accounts.models import Role
from apps.catalog.registry import all_step_types, get_step_type
from apps.workflows import editor, services
from apps.workflows.spec import load_spec
from apps.workflows.spec.forms import inputs_from_form
from apps.workflows.spec.schema import ON_FAILURE

WORKFLOWS_PER_PAGE = 25
VERSIONS_PER_PAGE = 20
# The engine's "Start run" control; shown once the runs app provides it.
START_RUN_TEMPLATE = "runs/_start_run.html"
STARTER_SPEC = """\
name: my-workflow
description: What this workflow does, in one sentence.
inputs:
  period:
    type: string
    description: The period to process, such as 2026-11.
steps:
  - id: hello
    type: echo
    with:
      message: "Processing {{ inputs.period }}"
"""


def _query_without_page(request) -> str:
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


@login_required
def workflow_list(request):
    chosen = {"team": request.GET.get("team", "").strip(), "q": request.GET.get("q", "").strip()}
    workflows = services.workflows_for(request.user, team_slug=chosen["team"], search=chosen["q"])
    page = Paginator(workflows, WORKFLOWS_PER_PAGE).get_page(request.GET.get("page"))
    template = "workflows/list.html#results" if request.htmx else "workflows/list.html"
    return render(request, template, {
        "page": page, "chosen": chosen, "query": _query_without_page(request),
        "teams": visible_teams(request.user),
        "can_create": services.teams_where_author(request.user).exists(),
    })


def _start_run_available() -> bool:
    try:
        get_template(START_RUN_TEMPLATE)
    except TemplateDoesNotExist:
        return False
    return True


@login_required
def workflow_detail(request, pk: int):
    workflow = services.get_workflow_for_user(request.user, pk)
    versions = workflow.versions.select_related("created_by")
    return render(request, "workflows/detail.html", {
        "workflow": workflow,
        "version": workflow.current_version,
        "versions": Paginator(versions, VERSIONS_PER_PAGE).get_page(request.GET.get("page")),
        "all_versions": versions,
        "can_edit": services.can_author(request.user, workflow),
        "can_run": has_role(request.user, workflow.team, Role.OPERATOR),
        "start_run_enabled": _start_run_available(),
    })


@login_required
def version_detail(request, pk: int, number: int):
    workflow = services.get_workflow_for_user(request.user, pk)
    version = services.get_version(workflow, number)
    return render(request, "workflows/version.html", {"workflow": workflow, "version": version})


@login_required
def version_diff(request, pk: int):
    workflow = services.get_workflow_for_user(request.user, pk)
    versions = list(workflow.versions.select_related("created_by"))
    if len(versions) < 2:
        return render(request, "workflows/diff.html", {"workflow": workflow, "versions": versions, "diff": None})
    # Newest first: by default compare the current version with the one before it.
    old = services.get_version(workflow, request.GET.get("from") or versions[1].number)
    new = services.get_version(workflow, request.GET.get("to") or versions[0].number)
    return render(request, "workflows/diff.html", {
        "workflow": workflow, "versions": versions, "diff": services.diff_versions(old, new),
    })


@login_required
def workflow_new(request):
    teams = services.teams_where_author(request.user)
    if not teams.exists():
        raise PermissionDenied("You need the author role in a team to create workflows. Ask a platform admin for it.")
    return _editor(request, teams=teams, workflow=None, initial_source=STARTER_SPEC)


@login_required
def workflow_edit(request, pk: int):
    workflow = services.get_workflow_for_user(request.user, pk, role=Role.AUTHOR)
    return _editor(request, teams=None, workflow=workflow, initial_source=workflow.current_version.source)


def _editor(request, *, teams, workflow, initial_source: str):
    """The YAML editor for a new workflow (pick a team) or a new version of `workflow`."""
    form = {"source": initial_source, "message": "", "team": ""}
    errors = []
    if request.method == "POST":
        form = {key: request.POST.get(key, "") for key in form}
        team = workflow.team if workflow else teams.filter(slug=form["team"]).first()
        if team is None:
            messages.error(request, "Choose the team this workflow belongs to.")
        else:
            try:
                version = services.save_version(request.user, team=team, source=form["source"],
                                                message=form["message"].strip(), workflow=workflow)
            except services.SpecInvalid as invalid:
                errors = invalid.errors
            except services.GitManaged as managed:
                messages.error(request, str(managed))
            else:
                messages.success(request, f"Saved {version.workflow.name} as version {version.number}.")
                return redirect("workflows:detail", version.workflow_id)
    return render(request, "workflows/edit.html", {
        "workflow": workflow, "teams": teams, "form": form, "errors": errors, "checked": request.method == "POST",
        "git_file_url": workflow.git_source.file_url(workflow.git_path) if workflow and workflow.git_source else "",
    })


@login_required
@require_POST
def validate(request):
    """The live error list of the editor (an htmx fragment)."""
    if not services.teams_where_author(request.user).exists():
        raise PermissionDenied("You need the author role in a team to check workflows.")
    result = load_spec(request.POST.get("source", ""))
    return render(request, "workflows/edit.html#spec_errors", {"errors": result.errors, "checked": True})


# --- The editor's live panels (htmx fragments; they save nothing: the page's form does) ------------


def _require_author(user) -> None:
    if not services.teams_where_author(user).exists():
        raise PermissionDenied("You need the author role in a team to write workflows. Ask a platform admin for it.")


def _workflow_from(request):
    pk = request.POST.get("workflow") or request.GET.get("workflow")
    return services.get_workflow_for_user(request.user, pk) if pk else None


@login_required
@require_POST
def editor_preview(request):
    """The graph and the dry run of the YAML being edited; with `dry_run_inputs`, the dry run
    evaluates the conditions against the inputs typed into its form."""
    _require_author(request.user)
    source = request.POST.get("source", "")
    panel = editor.preview(source, _workflow_from(request))
    if panel["ok"] and request.POST.get("dry_run_inputs"):
        provided, unreadable = inputs_from_form(panel["inputs"], request.POST)
        if unreadable:
            panel["dry_run"].input_errors.update(unreadable)
        else:
            panel = editor.preview(source, _workflow_from(request), provided)
    return render(request, "workflows/_editor_preview.html", panel | {"submitted": request.POST})


def _step_type_or_404(name: str):
    step = get_step_type(name)
    if step is None:
        raise Http404(f"There is no step type {name!r}: pick one from the list.")
    return step


def _step_form(request, *, step, source: str, editing: str = "", values=None, error: str = ""):
    fields, yaml_only = editor.step_form_fields(step) if step else ([], [])
    return render(request, "workflows/_step_form.html", {
        "step": step, "fields": fields, "yaml_only": yaml_only, "step_types": all_step_types(),
        "step_ids": editor.existing_step_ids(source), "editing": editing, "error": error,
        "values": values if values is not None else editor.form_values(
            editor.find_step(source, editing) if editing else None, step, fields),
        "on_failure_choices": ON_FAILURE,
    })


@login_required
def editor_step_form(request):
    """Form mode (an htmx fragment): a new step of the chosen type, or `edit`, a step of the YAML
    with its options and parameters filled in."""
    _require_author(request.user)
    source = request.GET.get("source", "")
    editing = request.GET.get("edit", "")
    name = request.GET.get("type", "")
    if editing and (written := editor.find_step(source, editing)) and request.htmx.trigger == "sf-edit":
        name = str(written.get("type", name))
    step = _step_type_or_404(name) if name else None
    return _step_form(request, step=step, source=source, editing=editing)


@login_required
@require_POST
def editor_add_step(request):
    """Add a step (a catalog example, or the form mode's values) to the YAML being edited, or
    change the step the form edits.

    Answers 204 with the new YAML in an `HX-Trigger` event the editor applies, or the form with
    the problem to fix (200, so htmx shows it).
    """
    _require_author(request.user)
    step = _step_type_or_404(request.POST.get("type", ""))
    source = request.POST.get("source", "")
    editing = request.POST.get("edit", "")
    try:
        if request.POST.get("mode") == "form":
            fields, _ = editor.step_form_fields(step)
            values = editor.options_from_form(fields, request.POST) | {"type": step.name}
            if not editing:
                values["id"] = editor.unique_step_id(source, values["id"] or editor.default_step_id(step.name))
            changed = editor.put_step(source, values, replacing=editing or None)
            step_id = values.get("id") or editing
        else:
            entry = editor.example_entry(step)
            step_id = entry["id"] = editor.unique_step_id(source, entry["id"])
            changed = editor.put_step(source, entry)
    except editor.FormValueError as problem:
        return _step_form(request, step=step, source=source, editing=editing, values=editor.submitted_values(request.POST),
                          error=str(problem))
    response = HttpResponse(status=204)
    response["HX-Trigger"] = json.dumps({"fd:step-added": {"source": changed.source, "line": changed.first_line,
                                                           "step": step_id, "changed": bool(editing)}})
    return response
