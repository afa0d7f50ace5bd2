"""The workflow spec language: YAML in, a validated and normalized dict out.

Public entry points (see each module):
- `load_spec(text) -> SpecResult` (validate.py): parse, check against the JSON Schema, check
  meaning; returns the normalized spec or every located error at once.
- `validate_inputs(spec, provided) -> (values, errors)` (validate.py): a run's inputs.
- `form_errors(form, values) -> {field: problem}` (validate.py): what an approver filled in a
  gate's `form`.
- `render_params(value, context)` / `evaluate_condition(expr, context)` (templating.py):
  Jinja2-sandboxed templating and conditions, used by the engine at run time.

The normalized form (what `WorkflowVersion.spec` stores and the engine runs) is documented
in `normalize.py`; the JSON Schema of the YAML is in `schema.py`.
"""

from apps.workflows.spec.errors import SpecError, SpecResult
from apps.workflows.spec.validate import form_errors, load_spec, validate_inputs

__all__ = ["SpecError", "SpecResult", "form_errors", "load_spec", "validate_inputs"]
