"""REST API of the accounts app: the caller, their teams, and their API tokens."""

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts import services
from apps.accounts.access import visible_teams
from apps.accounts.models import ApiToken, Membership, Team


class TeamSerializer(serializers.ModelSerializer):
    class Meta:
        model = Team
        fields = ["id", "slug", "name", "description"]


class MembershipSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Membership
        fields = ["team", "role"]


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    display_name = serializers.CharField()
    is_platform_admin = serializers.BooleanField()
    memberships = MembershipSerializer(many=True)


class ApiTokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
        read_only_fields = ["id", "prefix", "created_at", "last_used_at", "revoked_at"]


class NewApiTokenSerializer(ApiTokenSerializer):
    key = serializers.CharField(read_only=True, help_text="Shown once; only its hash is stored.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "key"]


class MeView(APIView):
    @extend_schema(responses=MeSerializer)
    def get(self, request):
        return Response(MeSerializer(request.user).data)


class TeamList(generics.ListAPIView):
    serializer_class = TeamSerializer

    def get_queryset(self):
        return visible_teams(self.request.user)


class TokenList(generics.ListCreateAPIView):
    serializer_class = ApiTokenSerializer

    def get_queryset(self):
        return self.request.user.api_tokens.all()

    @extend_schema(request=ApiTokenSerializer, responses={201: NewApiTokenSerializer})
    def create(self, request, *args, **kwargs):
        serializer = ApiTokenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token, key = services.issue_token(request.user, serializer.validated_data["name"])
        token.key = key
        return Response(NewApiTokenSerializer(token).data, status=status.HTTP_201_CREATED)


class TokenRevoke(APIView):
    @extend_schema(request=None, responses=ApiTokenSerializer)
    def post(self, request, token_id: int):
        token = generics.get_object_or_404(request.user.api_tokens.all(), pk=token_id)
        return Response(ApiTokenSerializer(services.revoke_token(request.user, token.pk)).data)


urlpatterns = [
    path("me", MeView.as_view(), name="api-me"),
    path("teams", TeamList.as_view(), name="api-teams"),
    path("tokens", TokenList.as_view(), name="api-tokens"),
    path("tokens/<int:token_id>/revoke", TokenRevoke.as_view(), name="api-token-revoke"),
]
