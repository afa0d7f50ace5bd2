"""Each app writes and locks only its own rows; others call its functions (`runs.engine.lock`,
`workflows.services.lock_workflow`, the apps' services). Read from the source: a call such as
`Run.objects.select_for_update()` or `Workflow.objects.filter(...).update(...)` outside the app
that owns the model fails this test, naming the file and line."""

import ast
from pathlib import Path

from django.apps import apps as registry

ROOT = Path(__file__).resolve().parents[1]
WRITES = {"select_for_update", "update", "create", "bulk_create", "bulk_update", "delete", "get_or_create",
          "update_or_create"}
# Where another app's rows are written on purpose, and why.
ALLOWED = {
    ("apps/platform/management/commands/load_demo.py", "User"): "the demo loader creates the demo people",
}


def _root_name(call: ast.Call) -> str | None:
    """The name a chain like `Run.objects.filter(...).update(...)` starts from."""
    node = call.func.value
    while isinstance(node, (ast.Attribute, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def cross_app_writes() -> list[str]:
    owners = {model.__name__: model._meta.app_label for model in registry.get_models()
              if model.__module__.startswith("apps.")}
    found = []
    for path in sorted((ROOT / "apps").glob("*/**/*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if "/migrations/" in relative:
            continue
        app = relative.split("/")[1]
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in WRITES):
                continue
            model = _root_name(node)
            if model in owners and owners[model] != app and (relative, model) not in ALLOWED:
                found.append(f"{relative}:{node.lineno} {node.func.attr} on {model} (owned by {owners[model]})")
    return found


def test_no_app_writes_or_locks_another_apps_rows():
    assert cross_app_writes() == []


def test_the_check_sees_a_lock_taken_on_another_apps_model():
    offender = ROOT / "apps" / "approvals" / "_boundary_probe.py"
    offender.write_text("from apps.runs.models import Run\n\n\ndef lock(pk):\n"
                        "    Run.objects.select_for_update().filter(pk=pk).first()\n")
    try:
        assert cross_app_writes() == ["apps/approvals/_boundary_probe.py:5 select_for_update on Run (owned by runs)"]
    finally:
        offender.unlink()
