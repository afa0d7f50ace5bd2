"""REST API of the monitoring app (mounted under /api/v1/): alerts, listed with filters, read,
acknowledged and resolved through the same domain functions as the pages. Team-scoped like every
read (404 outside your teams); acknowledging and resolving need the operator role (403)."""

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.access import get_for_user, scope_to_user
from apps.accounts.models import Role
from apps.monitoring import services
from apps.monitoring.models import Alert, AlertKind, AlertState


class AlertSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    workflow_name = serializers.CharField(source="workflow.name", read_only=True, default=None)
    acknowledged_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Alert
        fields = ["id", "team", "kind", "state", "title", "detail", "workflow", "workflow_name", "run",
                  "occurrences", "opened_at", "last_seen_at", "acknowledged_at", "acknowledged_by", "closed_at"]
        read_only_fields = fields


class AlertResolveSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=500,
                                   help_text="Why it is resolved; kept in the audit log.")


FILTERS = [
    OpenApiParameter("kind", OpenApiTypes.STR, enum=AlertKind.values, description="Only alerts of this kind."),
    OpenApiParameter("state", OpenApiTypes.STR, enum=AlertState.values, description="Only open or closed alerts."),
    OpenApiParameter("workflow", OpenApiTypes.INT, description="Only alerts about this workflow (its id)."),
]


def _choice(params, name: str, allowed: list[str]) -> str | None:
    value = params.get(name)
    if value and value not in allowed:
        raise ValidationError({name: f"{value!r} is not one of {', '.join(allowed)}."})
    return value or None


def _conflict(exc):
    return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)


class AlertList(generics.ListAPIView):
    """Alerts of your teams, most recently seen first."""

    serializer_class = AlertSerializer

    @extend_schema(parameters=FILTERS)
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        params = self.request.query_params
        alerts = scope_to_user(Alert.objects.select_related("team", "workflow", "acknowledged_by"), self.request.user)
        if kind := _choice(params, "kind", AlertKind.values):
            alerts = alerts.filter(kind=kind)
        if state := _choice(params, "state", AlertState.values):
            alerts = alerts.filter(state=state)
        if params.get("workflow"):
            if not params["workflow"].isdigit():
                raise ValidationError({"workflow": "Give the workflow's id, a number."})
            alerts = alerts.filter(workflow_id=int(params["workflow"]))
        return alerts


class AlertDetail(APIView):
    @extend_schema(responses=AlertSerializer)
    def get(self, request, pk: int):
        alert = get_for_user(Alert.objects.select_related("team", "workflow", "acknowledged_by"), request.user, pk)
        return Response(AlertSerializer(alert).data)


class AlertAcknowledge(APIView):
    @extend_schema(request=None, responses={200: AlertSerializer, 409: OpenApiTypes.OBJECT},
                   description="Say you are on it; the alert stays open. 409 when closed or already acknowledged.")
    def post(self, request, pk: int):
        alert = get_for_user(Alert.objects.all(), request.user, pk, role=Role.OPERATOR)
        try:
            return Response(AlertSerializer(services.acknowledge_alert(request.user, alert.pk)).data)
        except services.AlertError as exc:
            return _conflict(exc)


class AlertResolve(APIView):
    @extend_schema(request=AlertResolveSerializer, responses={200: AlertSerializer, 409: OpenApiTypes.OBJECT},
                   description="Close the alert; if the problem happens again a new alert opens. 409 when closed.")
    def post(self, request, pk: int):
        alert = get_for_user(Alert.objects.all(), request.user, pk, role=Role.OPERATOR)
        given = AlertResolveSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        try:
            resolved = services.resolve_alert(request.user, alert.pk, reason=given.validated_data["reason"])
        except services.AlertError as exc:
            return _conflict(exc)
        return Response(AlertSerializer(resolved).data)


urlpatterns = [
    path("alerts", AlertList.as_view(), name="api-alerts"),
    path("alerts/<int:pk>", AlertDetail.as_view(), name="api-alert"),
    path("alerts/<int:pk>/acknowledge", AlertAcknowledge.as_view(), name="api-alert-acknowledge"),
    path("alerts/<int:pk>/resolve", AlertResolve.as_view(), name="api-alert-resolve"),
]
