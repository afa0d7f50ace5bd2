"""Pages of the catalog app: the step type catalog with the connections your teams may use
(everyone signed in) and the connections and allowed hosts that platform admins manage."""

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from apps.accounts.access import require_platform_admin
from apps.catalog import services
from apps.catalog.forms import AllowedHostForm, ConnectionForm
from apps.catalog.models import AllowedHost, Connection
from apps.catalog.presentation import example_yaml, parameter_rows
from apps.catalog.registry import Risk, all_step_types, get_step_type, package_problems

PAGE_SIZE = 25


@login_required
def step_type_list(request):
    query = request.GET.get("q", "").strip()
    risk = request.GET.get("risk", "")
    types = all_step_types()
    if risk in (Risk.LOW, Risk.HIGH):
        types = [t for t in types if t.risk == risk]
    if query:
        needle = query.lower()
        types = [t for t in types if needle in t.name.lower() or needle in t.summary.lower()]
    page = Paginator(types, PAGE_SIZE).get_page(request.GET.get("page"))
    if request.htmx:
        return render(request, "catalog/list.html#types", {"page": page, "query": query, "risk": risk})
    return render(request, "catalog/list.html", {
        "page": page, "query": query, "risk": risk, "risks": (Risk.LOW, Risk.HIGH),
        "connections": services.connections_for(request.user),
        "package_problems": package_problems() if request.user.is_platform_admin else [],
    })


@login_required
def step_type_detail(request, name: str):
    step = get_step_type(name)
    if step is None:
        raise Http404(f"There is no step type {name!r}: pick one from the catalog.")
    return render(request, "catalog/detail.html", {
        "step": step, "parameters": parameter_rows(step.params_schema), "example": example_yaml(step),
        "schema_json": json.dumps(step.params_schema, indent=2, ensure_ascii=False),
        "output_schema_json": json.dumps(step.output_schema, indent=2, ensure_ascii=False) if step.output_schema else "",
    })


@login_required
def connection_list(request):
    require_platform_admin(request.user)
    page = Paginator(services.connections_for(request.user), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "catalog/connections.html", {
        # ?host= comes from a known cause's fix link ("allow host x"): the form is filled in, not submitted.
        "page": page, "hosts": AllowedHost.objects.all(),
        "host_form": AllowedHostForm(initial={"pattern": request.GET.get("host", "")[:253]}),
    })


def _save_connection(request, form: ConnectionForm, connection: Connection | None):
    try:
        if connection is None:
            return services.create_connection(request.user, secret=form.cleaned_data.get("secret") or "",
                                              **form.public_fields(), **form.sharing())
        return services.update_connection(request.user, connection.pk, secret=form.secret_change(),
                                          **form.public_fields(), **form.sharing())
    except services.CatalogError as exc:
        for field, problems in (exc.field_errors or {None: [str(exc)]}).items():
            for problem in problems:
                form.add_error(field if field in form.fields else None, problem)
        return None


def _connection_form_page(request, connection: Connection | None):
    # ?name= comes from a known cause's fix link ("add connection x"): a new connection's name is filled in.
    initial = {"name": request.GET.get("name", "")[:100]} if connection is None else None
    form = ConnectionForm(request.POST or None, instance=connection, initial=initial)
    if request.method == "POST" and form.is_valid():
        saved = _save_connection(request, form, connection)
        if saved is not None:
            messages.success(request, f"Connection {saved.name} saved.")
            return redirect("catalog:connections")
    return render(request, "catalog/connection_form.html", {"form": form, "connection": connection})


@login_required
def connection_create(request):
    require_platform_admin(request.user)
    return _connection_form_page(request, None)


@login_required
def connection_edit(request, name: str):
    require_platform_admin(request.user)
    return _connection_form_page(request, get_object_or_404(Connection, name=name))


@login_required
@require_POST
def connection_delete(request, name: str):
    require_platform_admin(request.user)
    connection = get_object_or_404(Connection, name=name)
    services.delete_connection(request.user, connection.pk)
    messages.success(request, f"Connection {name} deleted: steps that name it now fail until it is added again.")
    return redirect("catalog:connections")


@login_required
@require_POST
def allowed_host_add(request):
    require_platform_admin(request.user)
    form = AllowedHostForm(request.POST)
    if form.is_valid():
        host = services.add_allowed_host(request.user, **form.cleaned_data)
        messages.success(request, f"{host.pattern} added to the allow-list.")
    else:
        problems = " ".join(error for errors in form.errors.values() for error in errors)
        messages.error(request, f"The host was not added. {problems}")
    return redirect("catalog:connections")


@login_required
@require_POST
def allowed_host_remove(request, host_id: int):
    require_platform_admin(request.user)
    host = get_object_or_404(AllowedHost, pk=host_id)
    services.remove_allowed_host(request.user, host.pk)
    messages.success(request, f"{host.pattern} removed: http.request steps can no longer call it.")
    return redirect("catalog:connections")
