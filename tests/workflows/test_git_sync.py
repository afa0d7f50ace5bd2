"""Workflows from Git, against real repositories made with `git init` in the test's folder."""

import hashlib
import hmac

import pytest
from django.core.management import call_command
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.workflows import gitsync, tasks
from apps.workflows.models import GitSource, SyncStatus, Workflow, WorkflowVersion
from tests.workflows.gitrepo import Repo, flow


@pytest.fixture
def repo(tmp_path, settings):
    settings.FLOWDECK_GIT_LOCAL_ROOTS = [tmp_path]
    settings.FLOWDECK_GIT_ROOT = tmp_path / "checkouts"
    (tmp_path / "origin").mkdir()
    return Repo(tmp_path / "origin")


@pytest.fixture
def linked(repo, author, team):
    """Flows a and b in flows/ (and a file outside the folder), linked to billing; returns (source, token)."""
    repo.commit("Add the first flows", {"flows/a.yaml": flow("flow-a"), "flows/b.yaml": flow("flow-b"),
                                        "outside.yaml": flow("not-synced")})
    return gitsync.create_source(author, team=team, url=str(repo.path), branch="main", folder="flows")


@pytest.fixture
def synced(linked, repo, author, client_for):
    sha = repo.git("rev-parse", "HEAD")
    source, token = linked
    client_for(author).post(reverse("workflows:git_source_sync", args=[source.pk]))
    return source, token, sha


def test_a_sync_creates_versions_whose_page_shows_the_commit(synced, client):
    source, _, sha = synced
    assert sorted(Workflow.objects.filter(git_source=source).values_list("name", "git_path")) == [
        ("flow-a", "flows/a.yaml"), ("flow-b", "flows/b.yaml")]
    version = Workflow.objects.get(name="flow-a").current_version
    assert (version.number, version.commit_sha, version.commit_author) == (1, sha, "Grace Git <grace@example.com>")
    page = client.get(reverse("workflows:version", args=[version.workflow_id, 1])).content.decode()
    assert sha[:12] in page and "Add the first flows" in page and "Grace Git" in page
    assert AuditEvent.objects.filter(action="workflow.git_synced").count() == 1


def test_a_changed_file_gets_a_version_and_a_broken_one_is_refused_with_its_line(synced, repo, author, client):
    source, _, first_sha = synced
    second_sha = repo.commit("Change a, break b", {"flows/a.yaml": flow("flow-a", "changed"),
                                                      "flows/b.yaml": flow("flow-b", step_type="test.no_such_type")})
    response = client.post(reverse("workflows:git_source_sync", args=[source.pk]), follow=True)
    page = response.content.decode()
    assert "1 changed" in page and "1 refused" in page
    assert "flows/b.yaml, line 5" in page
    a, b = Workflow.objects.get(name="flow-a"), Workflow.objects.get(name="flow-b")
    assert (a.current_version.number, a.current_version.commit_sha) == (2, second_sha)
    assert (b.current_version.number, b.current_version.commit_sha) == (1, first_sha)
    assert "test.no_such_type" not in b.current_version.source
    source.refresh_from_db()
    assert source.last_status == SyncStatus.PARTIAL


def test_the_editor_and_the_api_refuse_to_save_a_synced_workflow(synced, author, client, api_for, team):
    workflow = Workflow.objects.get(name="flow-a")
    editor = client.get(reverse("workflows:edit", args=[workflow.pk])).content.decode()
    assert "managed in Git" in editor and "flows/a.yaml" in editor
    answer = client.post(reverse("workflows:edit", args=[workflow.pk]),
                         {"source": flow("flow-a", "edited in the browser"), "message": "try"})
    assert "is managed in Git" in answer.content.decode()
    api = api_for(author).post(reverse("api-workflows"), {"team": team.slug, "source": flow("flow-a", "via api")},
                               format="json")
    assert api.status_code == 409 and "managed in Git" in api.json()["detail"]
    assert list(workflow.versions.values_list("number", flat=True)) == [1]


def test_the_dry_run_shows_the_diff_and_changes_nothing(synced, repo, client):
    source, _, first_sha = synced
    repo.commit("Change a", {"flows/a.yaml": flow("flow-a", "dry"), "flows/c.yaml": flow("flow-c")})
    events = AuditEvent.objects.count()
    page = client.post(reverse("workflows:git_source_sync", args=[source.pk]), {"dry_run": "1"}).content.decode()
    assert "would change flow-a (now v1)" in page and "would create flow-c" in page and "flow-b unchanged" in page
    assert 'with: {message: &quot;dry&quot;}' in page
    assert WorkflowVersion.objects.count() == 2 and not Workflow.objects.filter(name="flow-c").exists()
    source.refresh_from_db()
    assert source.last_commit_sha == first_sha and AuditEvent.objects.count() == events


def test_the_webhook_with_a_bad_token_is_refused_and_a_good_one_syncs(linked, repo, client, monkeypatch,
                                                                     django_capture_on_commit_callbacks):
    source, token = linked
    url = reverse("workflows:git_source_webhook", args=[source.pk])
    queued = []
    monkeypatch.setattr(tasks.sync_git_source, "delay", lambda *args: queued.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        refused = client.post(url, HTTP_X_FLOWDECK_TOKEN=token + "x")
    assert refused.status_code == 403 and queued == []
    assert not Workflow.objects.exists() and GitSource.objects.get().last_synced_at is None
    with django_capture_on_commit_callbacks(execute=True):
        accepted = client.post(url, HTTP_X_GITLAB_TOKEN=token)
    assert accepted.status_code == 202 and queued == [(source.pk, "webhook")]
    tasks.sync_git_source(*queued[0])
    assert Workflow.objects.filter(git_source=source).count() == 2
    assert GitSource.objects.get().last_result["trigger"] == "webhook"


def test_a_github_push_signed_with_the_token_syncs_and_a_bad_signature_is_refused(
        linked, client, monkeypatch, django_capture_on_commit_callbacks):
    source, token = linked
    url = reverse("workflows:git_source_webhook", args=[source.pk])
    body = b'{"ref": "refs/heads/main", "after": "0123abc"}'
    queued = []
    monkeypatch.setattr(tasks.sync_git_source, "delay", lambda *args: queued.append(args))

    def signed(key: str, payload: bytes = body) -> str:
        return "sha256=" + hmac.new(key.encode(), payload, hashlib.sha256).hexdigest()

    with django_capture_on_commit_callbacks(execute=True):
        for signature, payload in ((signed(token + "x"), body), (signed(token), body + b" "), ("sha1=abc", body)):
            refused = client.post(url, payload, content_type="application/json", HTTP_X_HUB_SIGNATURE_256=signature)
            assert refused.status_code == 403
    assert queued == [] and GitSource.objects.get().last_synced_at is None
    with django_capture_on_commit_callbacks(execute=True):
        accepted = client.post(url, body, content_type="application/json", HTTP_X_HUB_SIGNATURE_256=signed(token))
    assert accepted.status_code == 202 and queued == [(source.pk, "webhook")]
    assert token not in GitSource.objects.get().webhook_token_encrypted  # kept encrypted, never in clear


def test_only_authors_sync_and_outsiders_do_not_see_the_source(linked, viewer, outsider, client_for):
    source, _ = linked
    url = reverse("workflows:git_source_sync", args=[source.pk])
    assert client_for(viewer).post(url).status_code == 403
    assert client_for(outsider).post(url).status_code == 404
    assert GitSource.objects.get().last_synced_at is None and not AuditEvent.objects.filter(
        action="workflow.git_synced").exists()


def test_a_local_path_outside_the_allowed_roots_is_refused(repo, author, client_for, tmp_path, settings):
    settings.FLOWDECK_GIT_LOCAL_ROOTS = [tmp_path / "elsewhere"]
    page = client_for(author).post(reverse("workflows:git_sources"),
                                   {"team": "billing", "url": str(repo.path), "branch": "main", "folder": ""})
    assert "local path under" in page.content.decode() and not GitSource.objects.exists()


def test_exported_workflows_sync_back_unchanged(saved_workflow, repo, author, team, tmp_path):
    call_command("export_workflows", str(repo.path / "flows"), team="billing")
    repo.commit("Export", {})
    source, _ = gitsync.create_source(author, team=team, url=str(repo.path), branch="main", folder="flows")
    report = gitsync.sync(source, actor=author, trigger="test")
    assert [(f.path, f.outcome) for f in report.files] == [("flows/month-end.yaml", "unchanged")]
    saved_workflow.refresh_from_db()
    assert saved_workflow.git_source == source and saved_workflow.versions.count() == 1


def test_the_api_dry_run_answers_the_diff_and_the_sync_records_the_commit(linked, repo, author, api_for):
    source, _ = linked
    api = api_for(author)
    url = reverse("api-git-source-sync", args=[source.pk])
    dry = api.post(url, {"dry_run": True}, format="json").json()
    assert [(f["path"], f["outcome"]) for f in dry["files"]] == [("flows/a.yaml", "create"), ("flows/b.yaml", "create")]
    assert "+name: flow-a" in dry["files"][0]["diff"] and not Workflow.objects.exists()
    synced = api.post(url, {}, format="json").json()
    assert synced["status"] == "ok" and synced["commit"]["sha"] == repo.git("rev-parse", "HEAD")
    version = api.get(reverse("api-workflow-version", args=[Workflow.objects.get(name="flow-b").pk, 1])).json()
    assert version["commit_sha"] == synced["commit"]["sha"] and version["commit_message"] == "Add the first flows"
