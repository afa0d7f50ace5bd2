"""`{% schedule_panel workflow %}`: a workflow's next scheduled runs and the pause/resume toggle of
its schedules (operators see the button), for the workflow page."""

from django import template

from apps.accounts.access import has_role
from apps.accounts.models import Role
from apps.triggers import services

register = template.Library()


@register.inclusion_tag("triggers/_schedule_panel.html", takes_context=True)
def schedule_panel(context, workflow):
    request = context["request"]
    try:
        upcoming, problem = services.next_run_times(workflow), ""
    except services.TriggerError as exc:
        upcoming, problem = [], str(exc)
    return {"workflow": workflow, "upcoming": upcoming, "schedule_problem": problem,
            "status": services.schedule_status(workflow), "here": request.get_full_path(),
            "can_operate": has_role(request.user, workflow.team, Role.OPERATOR), "csrf_token": context.get("csrf_token")}
