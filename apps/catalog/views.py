"""Pages of the catalog app (placeholder: being built)."""

from django.http import HttpResponse


def step_type_list(request):
    return HttpResponse("catalog")
