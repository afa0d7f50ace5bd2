"""Pages of the workflows app (placeholder: being built)."""

from django.http import HttpResponse


def workflow_list(request):
    return HttpResponse("workflows")


def workflow_detail(request, pk):
    return HttpResponse("workflow")
