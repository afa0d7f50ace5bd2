"""The audit log page: platform admins browse and filter every event."""

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render

from apps.accounts.access import require_platform_admin
from apps.audit.log import signing_key
from apps.audit.models import AuditEvent

FILTERS = ("actor", "action", "object_type", "object_id", "team")


@login_required
def event_list(request):
    require_platform_admin(request.user)
    events = AuditEvent.objects.all()
    chosen = {name: request.GET.get(name, "").strip() for name in FILTERS}
    if chosen["actor"]:
        events = events.filter(actor_label=chosen["actor"])
    if chosen["action"]:
        events = events.filter(action__startswith=chosen["action"])
    if chosen["object_type"]:
        events = events.filter(object_type=chosen["object_type"])
    if chosen["object_id"]:
        events = events.filter(object_id=chosen["object_id"])
    if chosen["team"]:
        events = events.filter(team_label=chosen["team"])
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    template = "audit/list.html#events" if request.htmx else "audit/list.html"
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, template, {"page": page, "chosen": chosen, "query": query.urlencode(),
                                      "signing_key_id": signing_key()[0]})
