"""A package whose second type's schema is not JSON Schema: neither of its types may load."""

from apps.catalog.registry import step_type


@step_type("test.package.fine_sibling", params_schema={"type": "object"}, summary="Valid, but its package is not.")
def fine_sibling(ctx):
    return None


@step_type("test.package.bad_schema", summary="Its schema is broken.",
           params_schema={"type": "object", "properties": {"count": {"type": "integer", "minimum": "zero"}}})
def bad_schema(ctx):
    return None
