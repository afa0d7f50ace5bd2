"""REST API of the workflows app (mounted under /api/v1/).

Reads are team-scoped exactly like the pages (404 outside your teams); saving goes through
`services.save_version` and needs the author role in the team (403 otherwise).

POST workflows/validate answers 200 with `ok: false` and the errors when the YAML has problems:
checking is not a failed request, and editors then treat every answer alike. POST workflows
(saving) answers 400 with the same error list, because there nothing was saved.
"""

import hashlib

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.workflows import git_api, services
from apps.workflows.models import Workflow, WorkflowVersion
from apps.workflows.spec import load_spec
from apps.workflows.spec.schema import SPEC_SCHEMA


class VersionSummarySerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = WorkflowVersion
        fields = ["number", "message", "created_by", "created_at", "source_sha256", "commit_sha", "commit_author",
                  "commit_message"]


class VersionSerializer(VersionSummarySerializer):
    workflow = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta(VersionSummarySerializer.Meta):
        fields = ["workflow", *VersionSummarySerializer.Meta.fields, "source", "spec"]


class WorkflowSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    current_version = VersionSummarySerializer(read_only=True)

    class Meta:
        model = Workflow
        fields = ["id", "name", "team", "description", "created_at", "current_version", "git_source", "git_path"]


class SpecErrorSerializer(serializers.Serializer):
    line = serializers.IntegerField(allow_null=True)
    column = serializers.IntegerField(allow_null=True)
    path = serializers.CharField()
    message = serializers.CharField()
    hint = serializers.CharField()


class SourceSerializer(serializers.Serializer):
    source = serializers.CharField(trim_whitespace=False, help_text="The workflow's YAML.")


class SaveSerializer(SourceSerializer):
    team = serializers.SlugField(help_text="Slug of the team that owns the workflow.")
    message = serializers.CharField(required=False, allow_blank=True, max_length=200, default="",
                                    help_text="What changed, for the version list.")


ValidationResultSerializer = inline_serializer("SpecValidation", {
    "ok": serializers.BooleanField(),
    "errors": SpecErrorSerializer(many=True),
    "spec": serializers.JSONField(allow_null=True, help_text="The normalized spec when ok."),
})
SpecInvalidSerializer = inline_serializer("SpecInvalid", {
    "ok": serializers.BooleanField(default=False), "errors": SpecErrorSerializer(many=True),
})
DiffSerializer = inline_serializer("VersionDiff", {
    "from_version": serializers.IntegerField(),
    "to_version": serializers.IntegerField(),
    "unified": serializers.CharField(help_text="The diff as `diff -u` prints it."),
    "lines": inline_serializer("DiffLine", {
        "kind": serializers.ChoiceField(["context", "added", "removed", "hunk"]),
        "old_number": serializers.IntegerField(allow_null=True),
        "new_number": serializers.IntegerField(allow_null=True),
        "text": serializers.CharField(),
    }, many=True),
})


def _errors(errors) -> list[dict]:
    return [error.as_dict() for error in errors]


class WorkflowListCreate(generics.ListAPIView):
    serializer_class = WorkflowSerializer

    def get_queryset(self):
        return services.workflows_for(self.request.user, team_slug=self.request.query_params.get("team", ""),
                                      search=self.request.query_params.get("search", ""))

    @extend_schema(parameters=[
        OpenApiParameter("team", str, description="Only this team's workflows (its slug)."),
        OpenApiParameter("search", str, description="Name or description contains this text."),
    ])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=SaveSerializer,
        responses={201: VersionSerializer, 200: VersionSerializer, 400: SpecInvalidSerializer},
        description="Create a workflow from YAML, or add a version to the workflow its `name` already names. "
                    "201 when a version was created, 200 when the YAML equals the current version.",
    )
    def post(self, request):
        body = SaveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        team = services.visible_team(request.user, body.validated_data["team"])
        if team is None:
            return Response({"team": [f"No team {body.validated_data['team']!r} among your teams."]},
                            status=status.HTTP_400_BAD_REQUEST)
        source = body.validated_data["source"]
        already_saved = set(WorkflowVersion.objects.filter(
            workflow__team=team, source_sha256=hashlib.sha256(source.encode()).hexdigest()).values_list("pk", flat=True))
        try:
            version = services.save_version(request.user, team=team, source=source,
                                            message=body.validated_data["message"])
        except services.SpecInvalid as invalid:
            return Response({"ok": False, "errors": _errors(invalid.errors)}, status=status.HTTP_400_BAD_REQUEST)
        except services.GitManaged as managed:
            return Response({"detail": str(managed)}, status=status.HTTP_409_CONFLICT)
        created = version.pk not in already_saved
        return Response(VersionSerializer(version).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class WorkflowDetail(APIView):
    @extend_schema(responses=WorkflowSerializer)
    def get(self, request, pk: int):
        return Response(WorkflowSerializer(services.get_workflow_for_user(request.user, pk)).data)


class VersionList(generics.ListAPIView):
    serializer_class = VersionSummarySerializer

    def get_queryset(self):
        workflow = services.get_workflow_for_user(self.request.user, self.kwargs["pk"])
        return workflow.versions.select_related("created_by")


class VersionDetail(APIView):
    @extend_schema(responses=VersionSerializer)
    def get(self, request, pk: int, number: int):
        workflow = services.get_workflow_for_user(request.user, pk)
        return Response(VersionSerializer(services.get_version(workflow, number)).data)


class VersionDiffView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("from", int, required=True, description="The older version's number."),
                    OpenApiParameter("to", int, required=True, description="The newer version's number.")],
        responses=DiffSerializer,
    )
    def get(self, request, pk: int):
        workflow = services.get_workflow_for_user(request.user, pk)
        diff = services.diff_versions(services.get_version(workflow, request.query_params.get("from")),
                                      services.get_version(workflow, request.query_params.get("to")))
        return Response({
            "from_version": diff.old.number, "to_version": diff.new.number, "unified": diff.unified,
            "lines": [{"kind": line.kind, "old_number": line.old_number, "new_number": line.new_number,
                       "text": line.text} for line in diff.lines],
        })


class ValidateSpec(APIView):
    @extend_schema(request=SourceSerializer, responses=ValidationResultSerializer,
                   description="Check YAML without saving it. Always 200: `ok` says whether it is valid.")
    def post(self, request):
        body = SourceSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = load_spec(body.validated_data["source"])
        return Response({"ok": result.ok, "errors": _errors(result.errors), "spec": result.spec})


class SpecSchema(APIView):
    permission_classes = [AllowAny]

    @extend_schema(responses={200: OpenApiTypes.OBJECT}, description="The JSON Schema (Draft 2020-12) of workflow YAML.")
    def get(self, request):
        return Response(SPEC_SCHEMA)


urlpatterns = [
    path("workflows", WorkflowListCreate.as_view(), name="api-workflows"),
    path("workflows/schema", SpecSchema.as_view(), name="api-workflow-schema"),
    path("workflows/validate", ValidateSpec.as_view(), name="api-workflow-validate"),
    path("workflows/<int:pk>", WorkflowDetail.as_view(), name="api-workflow"),
    path("workflows/<int:pk>/versions", VersionList.as_view(), name="api-workflow-versions"),
    path("workflows/<int:pk>/versions/<int:number>", VersionDetail.as_view(), name="api-workflow-version"),
    path("workflows/<int:pk>/diff", VersionDiffView.as_view(), name="api-workflow-diff"),
]
urlpatterns += git_api.urlpatterns
