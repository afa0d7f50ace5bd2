"""`{% gate_controls req form as gate %}`: a gate's form fields and options for the decision form;
`req|gate_options`: whether approving means choosing an option (no plain Approve button then)."""

from django import template

from apps.approvals import gate_forms

register = template.Library()


@register.simple_tag
def gate_controls(request, form=None):
    """`form`: the page's DecisionForm (apps.approvals.forms), with what was typed and the errors."""
    if form is None:
        return gate_forms.gate_controls(request)
    return gate_forms.gate_controls(request, form.submitted, form.errors)


@register.filter
def gate_options(request) -> bool:
    return bool(gate_forms.gate_for(request.run, request.step_run).options)
