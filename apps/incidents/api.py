"""REST API of the incidents app (mounted under /api/v1/): list, read, open, own, resolve."""

from dataclasses import asdict

from django.urls import path
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.access import has_role
from apps.accounts.models import Role, Team
from apps.incidents import group_api, services
from apps.incidents.access import get_incident_for_user, visible_incidents
from apps.incidents.models import Incident, RootCauseCategory
from apps.runs.api import FactSerializer


class IncidentSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    root_cause_category = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Incident
        fields = ["id", "team", "title", "description", "status", "source", "owner", "run_id", "step_id",
                  "step_type", "error_type", "error_message", "error_signature", "occurrences",
                  "root_cause_category", "root_cause_description", "resolution", "occurred_at", "resolved_at",
                  "source_url"]
        read_only_fields = fields


class OpenIncidentSerializer(serializers.Serializer):
    team = serializers.SlugRelatedField(slug_field="slug", queryset=Team.objects.all())
    title = serializers.CharField(max_length=300)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    error_message = serializers.CharField(required=False, allow_blank=True, default="")


class ResolveSerializer(serializers.Serializer):
    category = serializers.SlugRelatedField(slug_field="slug", queryset=RootCauseCategory.objects.filter(is_active=True))
    root_cause_description = serializers.CharField()
    resolution = serializers.CharField()


def _conflict(exc):
    return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)


class IncidentList(generics.ListAPIView):
    serializer_class = IncidentSerializer

    def get_queryset(self):
        incidents = visible_incidents(self.request.user).select_related("team", "owner", "root_cause_category")
        if self.request.query_params.get("status"):
            incidents = incidents.filter(status=self.request.query_params["status"])
        return incidents

    @extend_schema(request=OpenIncidentSerializer, responses={201: IncidentSerializer})
    def post(self, request):
        serializer = OpenIncidentSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if not has_role(request.user, serializer.validated_data["team"], Role.OPERATOR):
            raise PermissionDenied("You need the operator role in this team to open incidents.")
        incident = services.open_incident(request.user, **serializer.validated_data)
        return Response(IncidentSerializer(incident).data, status=status.HTTP_201_CREATED)


class IncidentDetailSerializer(IncidentSerializer):
    investigation = serializers.SerializerMethodField(
        help_text="What changed before its failure: since the last success of the same step, the steps it "
                  "needs, other runs failing with the same error (empty when its run is no longer kept).")

    class Meta(IncidentSerializer.Meta):
        fields = [*IncidentSerializer.Meta.fields, "investigation"]
        read_only_fields = fields

    @extend_schema_field(FactSerializer(many=True))
    def get_investigation(self, incident: Incident) -> list[dict]:
        from apps.knowledge.incident_ranking import investigation_of

        return [asdict(fact) for fact in investigation_of(incident)]


class IncidentDetail(APIView):
    @extend_schema(responses=IncidentDetailSerializer)
    def get(self, request, pk: int):
        return Response(IncidentDetailSerializer(get_incident_for_user(request.user, pk)).data)


class IncidentOwn(APIView):
    @extend_schema(request=None, responses=IncidentSerializer)
    def post(self, request, pk: int):
        incident = get_incident_for_user(request.user, pk, triage=True)
        try:
            return Response(IncidentSerializer(services.take_ownership(request.user, incident.pk)).data)
        except services.IncidentError as exc:
            return _conflict(exc)


class IncidentResolve(APIView):
    @extend_schema(request=ResolveSerializer, responses=IncidentSerializer)
    def post(self, request, pk: int):
        incident = get_incident_for_user(request.user, pk, triage=True)
        serializer = ResolveSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            resolved = services.resolve(request.user, incident.pk, **serializer.validated_data)
        except services.IncidentError as exc:
            return _conflict(exc)
        return Response(IncidentSerializer(resolved).data)


urlpatterns = [
    *group_api.urlpatterns,
    path("incidents", IncidentList.as_view(), name="api-incidents"),
    path("incidents/<int:pk>", IncidentDetail.as_view(), name="api-incident"),
    path("incidents/<int:pk>/own", IncidentOwn.as_view(), name="api-incident-own"),
    path("incidents/<int:pk>/resolve", IncidentResolve.as_view(), name="api-incident-resolve"),
]
