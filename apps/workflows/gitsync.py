"""Workflows from Git: link a repository folder to a team, fetch it, and sync its YAML files.

A sync fetches one branch with the `git` command (a subprocess with a timeout, into
FLOWDECK_GIT_ROOT/<source id>), checks every *.yaml / *.yml file under the folder with the spec
loader, and saves each changed file through `services.save_version` with the commit recorded on
the version. A file with errors is refused with its path and line and its workflow keeps the
version it runs; the other files still sync. A dry run computes the same plan and saves nothing.
A sync claims its source with a compare-and-swap on `sync_started_at`, so a schedule tick, a
webhook and a click never share the checkout, and no database lock is held while git runs.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import subprocess
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.accounts.access import has_role
from apps.accounts.models import Role, Team
from apps.audit.log import record
from apps.catalog.secrets import SecretUnreadable, decrypt, encrypt
from apps.workflows import services
from apps.workflows.models import GitSource, SyncStatus, Workflow
from apps.workflows.spec import SpecError, load_spec

REMOTE_URL = re.compile(r"^(https://|ssh://|git@[\w.-]+:)[^\s]+$")
BRANCH = re.compile(r"^(?!-)(?!.*\.\.)[\w./-]{1,200}$")
YAML_SUFFIXES = (".yaml", ".yml")


class GitError(Exception):
    """git failed (unreachable, no such branch, timed out); the message says which command and why."""


class SyncBusy(Exception):
    """Another sync of this source is running."""


# --- Linking a repository ------------------------------------------------------------------


def check_location(url: str, branch: str, folder: str) -> None:
    """Refuse a location git could misread as an option, a transport we do not allow (ext::,
    fd::), or a local path outside FLOWDECK_GIT_LOCAL_ROOTS."""
    errors = {}
    if not REMOTE_URL.match(url):
        path = Path(url)
        roots = settings.FLOWDECK_GIT_LOCAL_ROOTS
        if not path.is_absolute() or not any(path.resolve().is_relative_to(root.resolve()) for root in roots):
            errors["url"] = ("Use an https://, ssh:// or git@host: URL" + (
                f", or a local path under {', '.join(str(r) for r in roots)}." if roots
                else "; local paths are off (FLOWDECK_GIT_LOCAL_ROOTS)."))
    if not BRANCH.match(branch):
        errors["branch"] = "A branch name such as main or release/2026 (no spaces, no leading -)."
    folder_path = PurePosixPath(folder)
    if folder_path.is_absolute() or ".." in folder_path.parts:
        errors["folder"] = "A folder inside the repository, such as workflows/billing (no leading / or ..)."
    if errors:
        raise ValidationError(errors)


def _new_token() -> tuple[str, str]:
    token = "gitsync_" + secrets.token_urlsafe(24)
    return token, hashlib.sha256(token.encode()).hexdigest()


def _require_author(actor, team: Team) -> None:
    if not has_role(actor, team, Role.AUTHOR):
        raise services.NotAnAuthor(f"You need the author role in {team.name} to manage its Git sources.")


@transaction.atomic
def create_source(actor, *, team: Team, url: str, branch: str, folder: str) -> tuple[GitSource, str]:
    """Link a repository folder to `team`; returns the source and its webhook token (shown once)."""
    _require_author(actor, team)
    folder = folder.strip("/")
    check_location(url, branch, folder)
    token, token_sha256 = _new_token()
    source = GitSource.objects.create(team=team, url=url, branch=branch, folder=folder,
                                      webhook_token_sha256=token_sha256, webhook_token_encrypted=encrypt(token),
                                      created_by=actor)
    record(actor, "workflow.git_source_created", source, team=team,
           after={"url": url, "branch": branch, "folder": folder})
    return source, token


@transaction.atomic
def rotate_token(actor, source: GitSource) -> str:
    _require_author(actor, source.team)
    token, source.webhook_token_sha256 = _new_token()
    source.webhook_token_encrypted = encrypt(token)
    source.save(update_fields=["webhook_token_sha256", "webhook_token_encrypted"])
    record(actor, "workflow.git_token_rotated", source, team=source.team)
    return token


@transaction.atomic
def delete_source(actor, source: GitSource) -> None:
    """Unlink the source: its workflows keep their versions and become editable in the browser."""
    _require_author(actor, source.team)
    names = list(source.workflows.values_list("name", flat=True))
    source.workflows.update(git_source=None, git_path="")
    record(actor, "workflow.git_source_deleted", source, team=source.team,
           before={"url": source.url, "branch": source.branch, "folder": source.folder, "workflows": names})
    source.delete()


def source_for_webhook(pk, token: str) -> GitSource | None:
    """The source `pk` when `token` is its webhook token, else None (the caller answers 403)."""
    source = GitSource.objects.filter(pk=pk).first()
    digest = hashlib.sha256(token.encode()).hexdigest()
    if source is None or not hmac.compare_digest(digest, source.webhook_token_sha256):
        return None
    return source


def source_for_signed_webhook(pk, body: bytes, signature: str) -> GitSource | None:
    """The source `pk` when `signature` is GitHub's `sha256=<hex>` HMAC of `body` keyed with its
    webhook token (the hook's "secret"), else None. A source linked before tokens were kept
    encrypted has none to check with: rotating its token gives it one."""
    source = GitSource.objects.filter(pk=pk).first()
    if source is None or not source.webhook_token_encrypted or not signature.startswith("sha256="):
        return None
    try:
        token = decrypt(source.webhook_token_encrypted)
    except SecretUnreadable:
        return None
    expected = hmac.new(token.encode(), body, hashlib.sha256).hexdigest()
    return source if hmac.compare_digest(expected, signature.removeprefix("sha256=")) else None


# --- Fetching ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkout:
    root: Path
    sha: str
    author: str
    message: str


def _git(*args: str, cwd: Path | None = None) -> str:
    # Only these transports: `ext::` would run a command, and nothing may ask for a password.
    command = ["git", "-c", "protocol.allow=never", "-c", "protocol.https.allow=always",
               "-c", "protocol.ssh.allow=always", "-c", "protocol.file.allow=always", *args]
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False,
                              timeout=settings.FLOWDECK_GIT_TIMEOUT_SECONDS,
                              env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"})
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} took longer than {settings.FLOWDECK_GIT_TIMEOUT_SECONDS} s "
                       "(FLOWDECK_GIT_TIMEOUT_SECONDS).") from None
    if done.returncode != 0:
        raise GitError(f"git {args[0]} failed: {done.stderr.strip()[-500:] or done.returncode}")
    return done.stdout


def fetch(source: GitSource) -> Checkout:
    """The branch's newest commit, checked out in the source's own folder."""
    check_location(source.url, source.branch, source.folder)
    root = settings.FLOWDECK_GIT_ROOT / str(source.pk)
    if not (root / ".git").is_dir():
        root.mkdir(parents=True, exist_ok=True)
        _git("init", "-q", str(root))
    _git("fetch", "-q", "--depth", "1", "--no-tags", source.url, f"refs/heads/{source.branch}", cwd=root)
    _git("checkout", "-q", "--force", "--detach", "FETCH_HEAD", cwd=root)
    _git("clean", "-q", "-f", "-d", "-x", cwd=root)
    sha, author, message = _git("log", "-1", "--format=%H%n%an <%ae>%n%s", cwd=root).split("\n", 2)
    return Checkout(root, sha, author, message.strip())


# --- The plan of a sync (the dry run) ------------------------------------------------------


@dataclass
class FilePlan:
    path: str
    outcome: str  # "create", "change", "unchanged" or "refused"
    name: str = ""
    source: str = ""
    errors: list[SpecError] = field(default_factory=list)
    diff: list[services.DiffLine] = field(default_factory=list)
    version: int | None = None

    def as_dict(self) -> dict:
        return {"path": self.path, "outcome": self.outcome, "workflow": self.name, "version": self.version,
                "errors": [error.as_dict() for error in self.errors]}


def _refused(path: str, message: str, hint: str, line: int | None = 1) -> FilePlan:
    return FilePlan(path, "refused", errors=[SpecError(line, 1 if line else None, "(file)", message, hint)])


def _yaml_files(checkout: Checkout, folder: str) -> list[Path]:
    base = (checkout.root / folder).resolve()
    if not base.is_relative_to(checkout.root.resolve()) or not base.is_dir():
        raise GitError(f"The branch has no folder {folder or '/'!r}.")
    # A symlink could point outside the checkout: only files that stay inside count.
    return sorted(p for p in base.rglob("*") if p.suffix in YAML_SUFFIXES and p.is_file()
                  and p.resolve().is_relative_to(checkout.root.resolve()) and ".git" not in p.parts)


def plan(source: GitSource, checkout: Checkout) -> list[FilePlan]:
    """What a sync of `checkout` would do to each file, without saving anything."""
    workflows = {w.name: w for w in Workflow.objects.filter(team=source.team).select_related("current_version")}
    plans, seen = [], {}
    for file in _yaml_files(checkout, source.folder):
        path = file.relative_to(checkout.root).as_posix()
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            plans.append(_refused(path, "the file is not UTF-8 text", "Save it as UTF-8."))
            continue
        result = load_spec(text)
        if not result.ok:
            plans.append(FilePlan(path, "refused", source=text, errors=result.errors))
            continue
        name = result.spec["name"]
        if name in seen:
            plans.append(_refused(path, f"workflow `{name}` is already defined by {seen[name]}",
                                  "Give each file its own `name`.", line=None))
            continue
        seen[name] = path
        existing = workflows.get(name)
        if existing and existing.git_source_id not in (None, source.pk):
            plans.append(_refused(path, f"workflow `{name}` is managed by another Git source ({existing.git_source})",
                                  "Remove the file from one of the two sources.", line=None))
            continue
        current = existing.current_version if existing else None
        if current is None:
            plans.append(FilePlan(path, "create", name, text, diff=services.diff_sources("", text)))
        elif current.source == text:
            plans.append(FilePlan(path, "unchanged", name, text, version=current.number))
        else:
            plans.append(FilePlan(path, "change", name, text, diff=services.diff_sources(current.source, text),
                                  version=current.number))
    return plans


# --- Syncing -------------------------------------------------------------------------------


@dataclass
class SyncReport:
    source: GitSource
    commit: Checkout | None
    files: list[FilePlan]
    dry_run: bool
    error: str = ""
    skipped: bool = False

    @property
    def status(self) -> str:
        if self.error:
            return SyncStatus.FAILED
        return SyncStatus.PARTIAL if any(f.outcome == "refused" for f in self.files) else SyncStatus.OK

    def counts(self) -> dict[str, int]:
        outcomes = [f.outcome for f in self.files]
        return {outcome: outcomes.count(outcome) for outcome in ("create", "change", "unchanged", "refused")}

    def as_dict(self) -> dict:
        return {"status": self.status, "dry_run": self.dry_run, "error": self.error, "skipped": self.skipped,
                "commit": None if self.commit is None else {"sha": self.commit.sha, "author": self.commit.author,
                                                            "message": self.commit.message},
                "counts": self.counts(), "files": [f.as_dict() for f in self.files]}


def _claim(source: GitSource) -> bool:
    now = timezone.now()
    # A claim older than a few git timeouts belongs to a sync that died; take it over.
    stale = now - timedelta(seconds=4 * settings.FLOWDECK_GIT_TIMEOUT_SECONDS)
    return GitSource.objects.filter(pk=source.pk).filter(
        Q(sync_started_at__isnull=True) | Q(sync_started_at__lt=stale)).update(sync_started_at=now) == 1


def sync(source: GitSource, *, actor=None, trigger: str, dry_run: bool = False,
         only_if_new: bool = False) -> SyncReport:
    """Fetch and sync `source` (or with `dry_run`, only plan it). `actor` None is the system
    (schedule, webhook). With `only_if_new` (the schedule), a commit already synced is skipped."""
    if actor is not None:
        _require_author(actor, source.team)
    if not _claim(source):
        raise SyncBusy(f"{source} is being synced right now; try again in a moment.")
    try:
        return _sync_claimed(source, actor=actor, trigger=trigger, dry_run=dry_run, only_if_new=only_if_new)
    finally:
        GitSource.objects.filter(pk=source.pk).update(sync_started_at=None)


def _sync_claimed(source, *, actor, trigger, dry_run, only_if_new) -> SyncReport:
    try:
        checkout = fetch(source)
        files = plan(source, checkout)
    except (GitError, ValidationError) as failure:
        report = SyncReport(source, None, [], dry_run, error=str(failure.messages if isinstance(
            failure, ValidationError) else failure))
    else:
        report = SyncReport(source, checkout, files, dry_run)
        if only_if_new and checkout.sha == source.last_commit_sha:
            report.skipped = True
            return report
    if dry_run:
        return report
    for file in report.files:
        if file.outcome in ("create", "change") or (file.outcome == "unchanged" and not _linked(source, file)):
            _save(source, actor, report.commit, file)
    _record(source, actor, trigger, report)
    return report


def _linked(source: GitSource, file: FilePlan) -> bool:
    return Workflow.objects.filter(team=source.team, name=file.name, git_source=source, git_path=file.path).exists()


def _save(source: GitSource, actor, checkout: Checkout, file: FilePlan) -> None:
    commit = services.Commit(source, file.path, checkout.sha, checkout.author, checkout.message)
    try:
        version = services.save_version(actor, team=source.team, source=file.source, commit=commit,
                                        message=f"Git {checkout.sha[:7]}: {checkout.message}")
    except services.SpecInvalid as invalid:  # the catalog changed between plan and save
        file.outcome, file.errors = "refused", invalid.errors
    else:
        file.version = version.number


@transaction.atomic
def _record(source: GitSource, actor, trigger: str, report: SyncReport) -> None:
    source.last_synced_at = timezone.now()
    source.last_status = report.status
    source.last_result = report.as_dict() | {"trigger": trigger}
    if report.commit is not None:
        source.last_commit_sha = report.commit.sha
    source.save(update_fields=["last_synced_at", "last_status", "last_result", "last_commit_sha"])
    record(actor, "workflow.git_synced", source, team=source.team, after={
        "trigger": trigger, "status": report.status, "error": report.error,
        "commit": report.commit.sha if report.commit else None, "counts": report.counts(),
        "refused": [f.path for f in report.files if f.outcome == "refused"],
    })
