"""Knowledge pages: runbooks (list, search, detail), feedback on suggestions, the LLM summary
panel, and the index status page for platform admins."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST, require_safe
from django_htmx.http import reswap, retarget

from apps.accounts.access import require_platform_admin
from apps.incidents.access import get_incident_for_user, may_triage
from apps.knowledge import llm, practice, services, warmup
from apps.knowledge.embedding import MODEL_NAME, encoder_loaded
from apps.knowledge.indexing import reader
from apps.knowledge.models import EvaluationResult, Feedback, Runbook, TargetKind, Verdict
from apps.knowledge.suggest import search_runbook_sections


@login_required
def runbook_list(request):
    query = request.GET.get("q", "").strip()
    if query:
        sections = search_runbook_sections(query)
        page = Paginator(sections, 20).get_page(request.GET.get("page"))
        return render(request, "knowledge/runbooks.html", {"query": query, "page": page, "searching": True})
    page = Paginator(Runbook.objects.all(), 30).get_page(request.GET.get("page"))
    return render(request, "knowledge/runbooks.html", {"query": "", "page": page, "searching": False})


@login_required
def runbook_detail(request, pk: int):
    runbook = get_object_or_404(Runbook, pk=pk)
    return render(request, "knowledge/runbook.html", {"runbook": runbook, "sections": runbook.sections.all()})


@login_required
@require_POST
def feedback(request, incident_id: int):
    incident = get_incident_for_user(request.user, incident_id)
    target_kind, target_ref = request.POST.get("target_kind", ""), request.POST.get("target_ref", "")
    try:
        saved = services.give_feedback(request.user, incident, target_kind=target_kind, target_ref=target_ref,
                                       verdict=request.POST.get("verdict", ""))
    except services.KnowledgeError as exc:
        return HttpResponseBadRequest(str(exc))
    context = {"incident": incident, "kind": target_kind, "ref": target_ref, "verdict": saved.verdict,
               "can_confirm": target_kind != TargetKind.RUNBOOK}
    if request.htmx and saved.verdict == Verdict.ROOT_CAUSE:
        # The confirmed cause heads the list at once: the whole list is swapped, not the buttons.
        from apps.knowledge.incident_ranking import ranking_for

        response = render(request, "knowledge/_suggestions.html",
                          {"incident": incident, "suggestions": ranking_for(incident)})
        return reswap(retarget(response, "#suggestions"), "outerHTML")
    if request.htmx:
        return render(request, "knowledge/_feedback.html", context)
    messages.success(request, "Thanks: your feedback will shape the next suggestions.")
    return redirect("incidents:detail", incident.pk)


@login_required
@require_safe
def incident_suggestions(request, incident_id: int):
    """The incident's suggestions fragment, which its page polls while a worker computes them."""
    from apps.knowledge.incident_ranking import ranking_for

    incident = get_incident_for_user(request.user, incident_id)
    return render(request, "knowledge/_suggestions.html", {"incident": incident, "suggestions": ranking_for(incident)})


@login_required
def summary(request, incident_id: int):
    """GET: the summary panel (htmx polls it while pending). POST: ask for a fresh summary."""
    incident = get_incident_for_user(request.user, incident_id)
    if request.method == "POST":
        if not may_triage(request.user, incident):
            raise PermissionDenied("You need the operator role in this team to ask for a summary.")
        current = llm.request_summary(request.user, incident)
    else:
        current = getattr(incident, "llm_summary", None)
    if request.htmx:
        return render(request, "knowledge/_summary.html", {"incident": incident, "summary": current})
    return redirect("incidents:detail", incident.pk)


@login_required
def admin_page(request):
    require_platform_admin(request.user)
    if request.method == "POST":
        services.request_rebuild(request.user)
        messages.success(request, "Rebuild queued: a worker re-embeds changed texts and rewrites the index.")
        return redirect("knowledge:admin")
    index = reader().get()
    rate, confirmed = services.top3_confirmed_rate()
    kinds = {}
    for doc in index.docs:
        kinds[doc.kind] = kinds.get(doc.kind, 0) + 1
    return render(request, "knowledge/admin.html", {
        "index": index, "kinds": kinds, "model": index.meta.get("model", MODEL_NAME),
        "model_loaded": encoder_loaded(), "warmup": warmup.status(), "last_build": services.last_build(),
        "evaluations": EvaluationResult.objects.all()[:6], "top3_rate": rate, "confirmed": confirmed,
        "weeks": practice.weeks_in_practice(), "last_evaluation": practice.last_evaluation(),
        "feedback_count": Feedback.objects.count(), "llm_configured": llm.is_configured(),
        "fusion": index.meta.get("fusion"), "fusion_weights": services.learned_weights(index.meta),
    })
