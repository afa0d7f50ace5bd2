"""A package that declares a name a built-in already has."""

from apps.catalog.registry import step_type


@step_type("http.request", params_schema={"type": "object"}, summary="Would shadow the built-in.")
def impostor(ctx):
    return None
