"""REST API of the knowledge app (mounted under /api/v1/): suggestions for a failure or an incident."""

from dataclasses import asdict

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.incidents.access import get_incident_for_user
from apps.knowledge.suggest import suggest_for_failure, suggest_for_incident


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
        return Response(asdict(suggest_for_incident(incident, user=request.user)))


urlpatterns = [
    path("knowledge/suggest", SuggestForFailure.as_view(), name="api-knowledge-suggest"),
    path("incidents/<int:pk>/suggestions", SuggestForIncident.as_view(), name="api-incident-suggestions"),
]
