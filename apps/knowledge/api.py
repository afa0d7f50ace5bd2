"""REST API of the knowledge app (mounted under /api/v1/): suggestions for a failure's text, and
an incident's ranking (the same one its pages show; 202 while a worker computes it)."""

from dataclasses import asdict

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.incidents.access import get_incident_for_user
from apps.knowledge.incident_ranking import ranking_for
from apps.knowledge.suggest import suggest_for_failure


class FailureSerializer(serializers.Serializer):
    text = serializers.CharField(help_text="The failure: title, error message, log lines.")
    error_signature = serializers.CharField(required=False, allow_blank=True, default="")


class SuggestForFailure(APIView):
    @extend_schema(request=FailureSerializer, responses=dict)
    def post(self, request):
        serializer = FailureSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        suggestions = suggest_for_failure(serializer.validated_data["text"],
                                          serializer.validated_data["error_signature"] or None, user=request.user)
        return Response(asdict(suggestions))


class SuggestForIncident(APIView):
    @extend_schema(responses=dict)
    def get(self, request, pk: int):
        incident = get_incident_for_user(request.user, pk)
        ranking = ranking_for(incident)
        if ranking is None:
            return Response({"detail": "The ranking is being computed; ask again in a few seconds."},
                            status=status.HTTP_202_ACCEPTED, headers={"Retry-After": "2"})
        return Response(asdict(ranking))


urlpatterns = [
    path("knowledge/suggest", SuggestForFailure.as_view(), name="api-knowledge-suggest"),
    path("incidents/<int:pk>/suggestions", SuggestForIncident.as_view(), name="api-incident-suggestions"),
]
