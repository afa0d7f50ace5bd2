"""A package that loads: one valid step type."""

from apps.catalog.registry import step_type


@step_type("test.package.good", params_schema={"type": "object"}, summary="Loads fine.")
def good(ctx):
    return {"ok": True}
