"""Domain functions of the workflows app: the only code that writes workflows and versions.

A workflow is created by saving its first valid spec; every later change of the YAML adds an
immutable version. Reads go through the team-scoped helpers here, so pages and the API agree.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Max, Q, QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404

from apps.accounts.access import (
    get_for_user,
    has_role,
    scope_to_user,
    team_ids_with_role,
    visible_teams,
)
from apps.accounts.models import Role, Team
from apps.audit.log import record
from apps.workflows.models import GitSource, Workflow, WorkflowVersion
from apps.workflows.spec import SpecError, load_spec


class SpecInvalid(Exception):
    """The YAML cannot be saved; `errors` holds every located error."""

    def __init__(self, errors: list[SpecError]):
        self.errors = errors
        super().__init__(f"the spec has {len(errors)} error(s): " + "; ".join(str(e) for e in errors[:3]))


class NotAnAuthor(PermissionDenied):
    """Saving a workflow needs the author role in its team (pages and the API answer 403)."""


class GitManaged(Exception):
    """The workflow's truth is a Git repository: changes go there, not through the editor or API."""

    def __init__(self, workflow: Workflow):
        self.workflow = workflow
        super().__init__(f"{workflow.name} is managed in Git ({workflow.git_source}, file {workflow.git_path}): "
                         f"change the file there and sync; saving here is refused.")


@dataclass(frozen=True)
class Commit:
    """The Git commit a synced version comes from."""

    source: GitSource
    path: str
    sha: str
    author: str
    message: str


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@transaction.atomic
def save_version(actor, *, team: Team, source: str, message: str = "",
                 workflow: Workflow | None = None, commit: Commit | None = None) -> WorkflowVersion:
    """Save `source` as the next version of the workflow it names in `team` (creating it if new).

    Unchanged source returns the current version. With `workflow` (the edit page), the spec's
    name must stay that workflow's name, so an edit never creates a different workflow by accident.
    `actor` None is the system itself (management commands), which needs no role. A workflow
    managed in Git takes versions only from a sync, which passes the `commit`; a sync links the
    workflow to its source.
    """
    if actor is not None and not has_role(actor, team, Role.AUTHOR):
        raise NotAnAuthor(f"You need the author role in {team.name} to save workflows there.")
    result = load_spec(source)
    if not result.ok:
        raise SpecInvalid(result.errors)
    name = result.spec["name"]
    if workflow is not None and name != workflow.name:
        raise SpecInvalid([SpecError(*_name_location(source), "name",
                                     f"this is workflow `{workflow.name}`; the name cannot change to `{name}`",
                                     f"Put back `name: {workflow.name}`, or create a new workflow for `{name}`.")])
    workflow, created = Workflow.objects.select_for_update().get_or_create(
        team=team, name=name, defaults={"created_by": actor, "description": result.spec["description"]})
    if commit is None and workflow.git_source_id is not None:
        raise GitManaged(workflow)
    if commit is not None and (workflow.git_source_id, workflow.git_path) != (commit.source.pk, commit.path):
        workflow.git_source, workflow.git_path = commit.source, commit.path
        workflow.save(update_fields=["git_source", "git_path"])
    current = workflow.current_version
    source_sha256 = _sha256(source)
    if current is not None and current.source_sha256 == source_sha256:
        return current
    number = (workflow.versions.aggregate(highest=Max("number"))["highest"] or 0) + 1
    version = WorkflowVersion.objects.create(
        workflow=workflow, number=number, source=source, spec=result.spec, source_sha256=source_sha256,
        message=message[:200], created_by=actor, commit_sha=commit.sha if commit else "",
        commit_author=commit.author[:200] if commit else "", commit_message=commit.message[:500] if commit else "")
    workflow.current_version = version
    workflow.description = result.spec["description"]
    workflow.save(update_fields=["current_version", "description"])
    record(actor, "workflow.version_created", version, team=team,
           before=None if current is None else {"number": current.number, "source_sha256": current.source_sha256},
           after={"workflow": name, "number": number, "source_sha256": source_sha256, "message": version.message,
                  "new_workflow": created, "commit": version.commit_sha or None})
    return version


def _name_location(source: str) -> tuple[int, int]:
    for number, line in enumerate(source.splitlines(), start=1):
        if line.startswith("name:"):
            value = line[len("name:"):]
            return number, len("name:") + len(value) - len(value.lstrip()) + 1
    return 1, 1


# --- Reading --------------------------------------------------------------------------------

def workflows_for(user, *, team_slug: str = "", search: str = "") -> QuerySet:
    """The workflows `user` may see, optionally of one team and matching a name or description."""
    workflows = scope_to_user(Workflow.objects.select_related("team", "current_version", "current_version__created_by"),
                              user)
    if team_slug:
        workflows = workflows.filter(team__slug=team_slug)
    if search:
        workflows = workflows.filter(Q(name__icontains=search) | Q(description__icontains=search))
    return workflows


def get_workflow_for_user(user, pk, *, role: str | None = None) -> Workflow:
    """Workflow `pk` if `user` sees it (else 404) and, with `role`, holds it there (else 403)."""
    return get_for_user(Workflow.objects.select_related("team", "current_version", "git_source"), user, pk, role=role)


def get_version(workflow: Workflow, number) -> WorkflowVersion:
    """Version `number` of a workflow already fetched through the scoped helpers (404 if absent)."""
    try:
        number = int(number)
    except (TypeError, ValueError):
        raise Http404(f"{workflow.name} has no version {number!r}.") from None
    return get_object_or_404(workflow.versions.select_related("created_by"), number=number)


def visible_team(user, slug: str) -> Team | None:
    """The team `slug` if `user` may see it."""
    return visible_teams(user).filter(slug=slug).first()


def teams_where_author(user) -> QuerySet:
    team_ids = team_ids_with_role(user, Role.AUTHOR)
    teams = Team.objects.all()
    return teams if team_ids is None else teams.filter(pk__in=team_ids)


def can_author(user, workflow: Workflow) -> bool:
    return has_role(user, workflow.team, Role.AUTHOR)


# --- Diff -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class DiffLine:
    kind: str  # "context", "added", "removed" or "hunk"
    old_number: int | None
    new_number: int | None
    text: str

    @property
    def marker(self) -> str:
        return {"context": " ", "added": "+", "removed": "-", "hunk": ""}[self.kind]


@dataclass(frozen=True)
class VersionDiff:
    old: WorkflowVersion
    new: WorkflowVersion
    lines: list[DiffLine]

    @property
    def unified(self) -> str:
        """The classic unified diff text, as `diff -u` would print it."""
        return unified(self.lines, str(self.old), str(self.new))


def unified(lines: list[DiffLine], old_label: str = "current", new_label: str = "new") -> str:
    header = [f"--- {old_label}\n", f"+++ {new_label}\n"] if lines else []
    return "".join(header + [f"{line.marker}{line.text}\n" for line in lines])


def diff_versions(old: WorkflowVersion, new: WorkflowVersion, context: int = 3) -> VersionDiff:
    """The line-numbered unified diff of two versions' YAML."""
    return VersionDiff(old, new, diff_sources(old.source, new.source, context))


def diff_sources(old: str, new: str, context: int = 3) -> list[DiffLine]:
    """The line-numbered unified diff of two YAML texts, as hunks of context, removed and added lines."""
    before, after = old.splitlines(), new.splitlines()
    lines: list[DiffLine] = []
    for group in difflib.SequenceMatcher(None, before, after, autojunk=False).get_grouped_opcodes(context):
        first, last = group[0], group[-1]
        lines.append(DiffLine("hunk", None, None, f"@@ -{first[1] + 1},{last[2] - first[1]} "
                                                  f"+{first[3] + 1},{last[4] - first[3]} @@"))
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                lines += [DiffLine("context", i + 1, j + 1, before[i]) for i, j in zip(range(i1, i2), range(j1, j2))]
                continue
            lines += [DiffLine("removed", i + 1, None, before[i]) for i in range(i1, i2)]
            lines += [DiffLine("added", None, j + 1, after[j]) for j in range(j1, j2)]
    return lines


def lock_workflow(workflow_id: int) -> None:
    """Hold the workflow's row for the rest of the caller's transaction: what other apps call to
    serialise their work per workflow (runs counting its concurrency, triggers filling a batch)."""
    Workflow.objects.select_for_update().filter(pk=workflow_id).values_list("pk").first()
