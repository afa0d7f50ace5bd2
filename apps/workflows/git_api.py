"""REST API of Git sources (mounted under /api/v1/ with the workflows API).

Reads are team-scoped like the pages; creating, syncing and deleting need the author role.
The Git host's push hook is a page route (git_views.source_webhook), as the triggers' hooks are.
"""

from django.core.exceptions import ValidationError
from django.urls import path
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.access import get_for_user, scope_to_user
from apps.accounts.models import Role
from apps.workflows import gitsync, services
from apps.workflows.models import GitSource


class GitSourceSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = GitSource
        fields = ["id", "team", "url", "branch", "folder", "created_at", "last_synced_at", "last_commit_sha",
                  "last_status", "last_result"]


class CreateSerializer(serializers.Serializer):
    team = serializers.SlugField()
    url = serializers.CharField(max_length=500)
    branch = serializers.CharField(max_length=200, default="main")
    folder = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


SyncSerializer = inline_serializer("GitSync", {"dry_run": serializers.BooleanField(default=False)})


def _source(request, pk, role=None) -> GitSource:
    return get_for_user(GitSource.objects.select_related("team"), request.user, pk, role=role)


class GitSourceListCreate(generics.ListAPIView):
    serializer_class = GitSourceSerializer

    def get_queryset(self):
        return scope_to_user(GitSource.objects.select_related("team"), self.request.user)

    @extend_schema(request=CreateSerializer, responses={201: GitSourceSerializer},
                   description="Link a repository folder; the answer's `webhook_token` is shown only this once.")
    def post(self, request):
        body = CreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        team = services.visible_team(request.user, body.validated_data.pop("team"))
        if team is None:
            return Response({"team": ["No such team among your teams."]}, status=status.HTTP_400_BAD_REQUEST)
        try:
            source, token = gitsync.create_source(request.user, team=team, **body.validated_data)
        except ValidationError as invalid:
            return Response(invalid.message_dict, status=status.HTTP_400_BAD_REQUEST)
        return Response(GitSourceSerializer(source).data | {"webhook_token": token}, status=status.HTTP_201_CREATED)


class GitSourceDetail(APIView):
    @extend_schema(responses=GitSourceSerializer)
    def get(self, request, pk: int):
        return Response(GitSourceSerializer(_source(request, pk)).data)

    @extend_schema(responses={204: None}, description="Unlink: its workflows become editable in the browser.")
    def delete(self, request, pk: int):
        gitsync.delete_source(request.user, _source(request, pk, role=Role.AUTHOR))
        return Response(status=status.HTTP_204_NO_CONTENT)


class GitSourceSync(APIView):
    @extend_schema(request=SyncSerializer, responses={200: dict, 409: dict},
                   description="Fetch and sync now; with `dry_run`, only report what would change (with diffs).")
    def post(self, request, pk: int):
        source = _source(request, pk, role=Role.AUTHOR)
        dry_run = serializers.BooleanField().to_internal_value(request.data.get("dry_run", False))
        try:
            report = gitsync.sync(source, actor=request.user, trigger="api", dry_run=dry_run)
        except gitsync.SyncBusy as busy:
            return Response({"detail": str(busy)}, status=status.HTTP_409_CONFLICT)
        answer = report.as_dict()
        if dry_run:
            diffs = {file.path: services.unified(file.diff) for file in report.files}
            for file in answer["files"]:
                file["diff"] = diffs[file["path"]]
        return Response(answer)


class GitSourceToken(APIView):
    @extend_schema(request=None, responses={200: dict}, description="A new webhook token; the old one stops working.")
    def post(self, request, pk: int):
        return Response({"webhook_token": gitsync.rotate_token(request.user, _source(request, pk, role=Role.AUTHOR))})


urlpatterns = [
    path("workflows/git-sources", GitSourceListCreate.as_view(), name="api-git-sources"),
    path("workflows/git-sources/<int:pk>", GitSourceDetail.as_view(), name="api-git-source"),
    path("workflows/git-sources/<int:pk>/sync", GitSourceSync.as_view(), name="api-git-source-sync"),
    path("workflows/git-sources/<int:pk>/token", GitSourceToken.as_view(), name="api-git-source-token"),
]
