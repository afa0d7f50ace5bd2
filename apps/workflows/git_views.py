"""Pages of Git sources: link a repository folder to a team, see its last sync, dry-run and sync it.

Seeing a source needs a role in its team; changing or syncing it needs the author role (platform
admins may do everything). Every action calls one function of `gitsync`.
"""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apps.accounts.access import get_for_user, scope_to_user
from apps.accounts.models import Role
from apps.workflows import gitsync, services, tasks
from apps.workflows.models import GitSource


class GitSourceForm(forms.Form):
    team = forms.SlugField()
    url = forms.CharField(max_length=500, label="Repository URL or path")
    branch = forms.CharField(max_length=200, initial="main")
    folder = forms.CharField(max_length=300, required=False, help_text="Empty for the repository's root.")


def _get_source(user, pk, *, role=None) -> GitSource:
    return get_for_user(GitSource.objects.select_related("team"), user, pk, role=role)


@login_required
def source_list(request):
    authored = services.teams_where_author(request.user)
    if request.method == "POST" and not authored.exists():
        raise PermissionDenied("You need the author role in a team to link a repository to it.")
    form = GitSourceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        team = authored.filter(slug=form.cleaned_data["team"]).first()
        if team is None:
            form.add_error("team", "Choose a team where you are an author.")
        else:
            try:
                source, token = gitsync.create_source(request.user, team=team, url=form.cleaned_data["url"],
                                                      branch=form.cleaned_data["branch"],
                                                      folder=form.cleaned_data["folder"])
            except ValidationError as invalid:
                for name, problems in invalid.message_dict.items():
                    form.add_error(name, problems)
            else:
                return _detail(request, source, new_token=token)
    sources = scope_to_user(GitSource.objects.select_related("team"), request.user)
    return render(request, "workflows/git_sources.html", {"sources": sources, "form": form, "teams": authored})


@login_required
def source_detail(request, pk: int):
    return _detail(request, _get_source(request.user, pk))


def _detail(request, source: GitSource, *, new_token: str = "", dry_run=None):
    return render(request, "workflows/git_source.html", {
        "source": source, "new_token": new_token, "dry_run": dry_run,
        "can_manage": services.can_author(request.user, source),
        "workflows": source.workflows.select_related("current_version"),
        "webhook_url": request.build_absolute_uri(reverse("workflows:git_source_webhook", args=[source.pk])),
    })


@login_required
@require_POST
def source_sync(request, pk: int):
    """Sync now, or with `dry_run`, show what a sync would do."""
    source = _get_source(request.user, pk, role=Role.AUTHOR)
    dry_run = bool(request.POST.get("dry_run"))
    try:
        report = gitsync.sync(source, actor=request.user, trigger="page", dry_run=dry_run)
    except gitsync.SyncBusy as busy:
        messages.error(request, str(busy))
        return redirect("workflows:git_source", source.pk)
    if dry_run:
        return _detail(request, source, dry_run=report)
    counts = report.counts()
    if report.error:
        messages.error(request, f"The sync failed: {report.error}")
    else:
        messages.success(request, f"Synced {report.commit.sha[:7]}: {counts['create']} created, "
                                  f"{counts['change']} changed, {counts['unchanged']} unchanged, "
                                  f"{counts['refused']} refused.")
    return redirect("workflows:git_source", source.pk)


@login_required
@require_POST
def source_rotate_token(request, pk: int):
    source = _get_source(request.user, pk, role=Role.AUTHOR)
    return _detail(request, source, new_token=gitsync.rotate_token(request.user, source))


@login_required
@require_POST
def source_delete(request, pk: int):
    source = _get_source(request.user, pk, role=Role.AUTHOR)
    gitsync.delete_source(request.user, source)
    messages.success(request, f"Unlinked {source}: its workflows are now edited in the browser.")
    return redirect("workflows:git_sources")


@csrf_exempt
@require_POST
def source_webhook(request, pk: int):
    """The Git host's push hook: no session, only the source's token in `X-Flowdeck-Token` (or
    GitLab's `X-Gitlab-Token`), or GitHub's signature of the body made with it as the hook's
    secret (`X-Hub-Signature-256`). Queues a sync and answers 202; a wrong one changes nothing."""
    signature = request.headers.get("X-Hub-Signature-256")
    if signature:
        source = gitsync.source_for_signed_webhook(pk, request.body, signature)
    else:
        token = request.headers.get("X-Flowdeck-Token") or request.headers.get("X-Gitlab-Token") or ""
        source = gitsync.source_for_webhook(pk, token)
    if source is None:
        return JsonResponse({"detail": "Unknown source or wrong token."}, status=403)
    transaction.on_commit(lambda: tasks.sync_git_source.delay(source.pk, "webhook"))
    return JsonResponse({"queued": True}, status=202)
