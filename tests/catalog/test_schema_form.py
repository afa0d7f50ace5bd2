"""Forms built from a step type's parameter schema: every JSON Schema `type` form a real type
declares gets a field (a list of types such as ["string", "null"] included)."""

from apps.catalog.registry import all_step_types
from apps.catalog.schema_form import schema_fields


def test_a_nullable_type_is_its_real_type_and_a_union_is_json():
    schema = {"type": "object", "properties": {
        "name": {"type": ["string", "null"]}, "rows": {"type": ["integer", "null"]},
        "params": {"type": ["object", "array", "null"]}}}
    fields = {field.name: field.kind for field in schema_fields(schema, {"name": "x"}, prefix="retry_")}
    assert fields == {"name": "text", "rows": "integer", "params": "json"}


def test_every_installed_step_type_has_a_retry_form():
    for step_type in all_step_types():
        schema_fields(step_type.params_schema, {}, prefix="retry_")  # raises on a schema it cannot show
