"""REST API of the catalog app (mounted under /api/v1/): step types for everyone signed in;
connections and allowed hosts for platform admins, through the same services as the pages.
Team members may read the connections their teams may use (name, kind, who may use it).
A connection's secret can be written, never read: responses say only `has_secret`."""

from django.http import Http404
from django.shortcuts import get_object_or_404
from django.urls import path
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, permissions, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import Team
from apps.catalog import services
from apps.catalog.models import AllowedHost, Connection
from apps.catalog.presentation import example_yaml
from apps.catalog.registry import all_step_types, get_step_type


class IsPlatformAdmin(permissions.BasePermission):
    message = "Only platform admins can manage connections and allowed hosts."

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and request.user.is_platform_admin)


class StepTypeSerializer(serializers.Serializer):
    name = serializers.CharField()
    summary = serializers.CharField()
    risk = serializers.CharField()
    queue = serializers.CharField()
    timeout_seconds = serializers.IntegerField()
    idempotent = serializers.BooleanField()
    package = serializers.CharField(allow_null=True, help_text="The installed package that declares it; null: built in.")
    version = serializers.CharField(allow_null=True, help_text="That package's version; null: built in.")


class StepTypeDetailSerializer(StepTypeSerializer):
    doc = serializers.CharField()
    params_schema = serializers.JSONField()
    output_schema = serializers.JSONField(allow_null=True, help_text="A JSON Schema of the output, when declared.")
    example = serializers.JSONField(help_text="Example parameters (the step's `with`).")
    example_yaml = serializers.SerializerMethodField(help_text="The example as a `steps:` entry.")

    def get_example_yaml(self, step) -> str:
        return example_yaml(step)


class StepTypeList(generics.ListAPIView):
    serializer_class = StepTypeSerializer

    def get_queryset(self):
        return all_step_types()


class StepTypeDetail(APIView):
    @extend_schema(responses=StepTypeDetailSerializer)
    def get(self, request, name: str):
        step = get_step_type(name)
        if step is None:
            raise Http404(f"There is no step type {name!r}: GET /api/v1/step-types lists them.")
        return Response(StepTypeDetailSerializer(step).data)


class ConnectionSerializer(serializers.ModelSerializer):
    secret = serializers.CharField(write_only=True, required=False, allow_blank=True, trim_whitespace=False,
                                   help_text="Password or token; write-only. Omit to keep, \"\" to remove.")
    has_secret = serializers.BooleanField(read_only=True)
    team = serializers.SlugRelatedField(slug_field="slug", queryset=Team.objects.all(), required=False,
                                        allow_null=True, help_text="The slug of the team that owns it.")
    shared_with = serializers.SlugRelatedField(slug_field="slug", queryset=Team.objects.all(), many=True,
                                               required=False, help_text="Slugs of other teams that may use it.")

    class Meta:
        model = Connection
        fields = ["id", "name", "kind", "url", "allow_writes", "description", "secret", "has_secret",
                  *services.SHARING_FIELDS, "scoped_at", "created_at", "updated_at"]
        read_only_fields = ["id", "scoped_at", "created_at", "updated_at"]


class UsableConnectionSerializer(serializers.ModelSerializer):
    """What a team member sees of a connection their teams may use: no URL, no secret state."""

    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    shared_with = serializers.SlugRelatedField(slug_field="slug", read_only=True, many=True)

    class Meta:
        model = Connection
        fields = ["name", "kind", "description", *services.SHARING_FIELDS]
        read_only_fields = fields


def _service_call(call, *args, **kwargs):
    try:
        return call(*args, **kwargs)
    except services.CatalogError as exc:
        raise ValidationError(exc.field_errors or {"detail": str(exc)}) from None


class ReadOrPlatformAdmin(IsPlatformAdmin):
    """Everyone signed in reads the connections their teams may use; only platform admins write."""

    def has_permission(self, request, view):
        if request.method in permissions.SAFE_METHODS:
            return bool(request.user and request.user.is_authenticated)
        return super().has_permission(request, view)


class ConnectionScoped:
    permission_classes = [ReadOrPlatformAdmin]

    def get_queryset(self):
        return services.connections_for(self.request.user, self.request.query_params.get("team", ""))

    def get_serializer_class(self):
        # The schema documents the platform admin's view (the fuller one).
        if getattr(self, "swagger_fake_view", False) or self.request.user.is_platform_admin:
            return ConnectionSerializer
        return UsableConnectionSerializer


@extend_schema_view(get=extend_schema(parameters=[OpenApiParameter(
    "team", str, description="Only the connections this team's steps may use (its slug).")]))
class ConnectionList(ConnectionScoped, generics.ListCreateAPIView):
    serializer_class = ConnectionSerializer

    def create(self, request, *args, **kwargs):
        serializer = ConnectionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        connection = _service_call(services.create_connection, request.user, **serializer.validated_data)
        return Response(ConnectionSerializer(connection).data, status=status.HTTP_201_CREATED)


class ConnectionDetail(ConnectionScoped, generics.RetrieveUpdateDestroyAPIView):
    serializer_class = ConnectionSerializer
    lookup_field = "name"

    def update(self, request, *args, **kwargs):
        connection = self.get_object()
        serializer = ConnectionSerializer(connection, data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        changes = dict(serializer.validated_data)
        updated = _service_call(services.update_connection, request.user, connection.pk,
                                secret=changes.pop("secret", None), **changes)
        return Response(ConnectionSerializer(updated).data)

    def perform_destroy(self, instance):
        services.delete_connection(self.request.user, instance.pk)


class AllowedHostSerializer(serializers.ModelSerializer):
    class Meta:
        model = AllowedHost
        fields = ["id", "pattern", "allow_private", "note", "created_at"]
        read_only_fields = ["id", "created_at"]


class AllowedHostList(generics.ListCreateAPIView):
    serializer_class = AllowedHostSerializer
    permission_classes = [IsPlatformAdmin]
    queryset = AllowedHost.objects.all()

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        host = _service_call(services.add_allowed_host, request.user, **serializer.validated_data)
        return Response(AllowedHostSerializer(host).data, status=status.HTTP_201_CREATED)


class AllowedHostDetail(APIView):
    permission_classes = [IsPlatformAdmin]

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, host_id: int):
        host = get_object_or_404(AllowedHost, pk=host_id)
        services.remove_allowed_host(request.user, host.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


urlpatterns = [
    path("step-types", StepTypeList.as_view(), name="api-step-types"),
    path("step-types/<str:name>", StepTypeDetail.as_view(), name="api-step-type"),
    path("connections", ConnectionList.as_view(), name="api-connections"),
    path("connections/<slug:name>", ConnectionDetail.as_view(), name="api-connection"),
    path("allowed-hosts", AllowedHostList.as_view(), name="api-allowed-hosts"),
    path("allowed-hosts/<int:host_id>", AllowedHostDetail.as_view(), name="api-allowed-host"),
]
