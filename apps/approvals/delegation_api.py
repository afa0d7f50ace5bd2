"""REST API of delegations (mounted under /api/v1/ with the approvals API): list yours, create
one, end one, through the same functions as the delegations page."""

from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.approvals import delegation
from apps.approvals.delegation_forms import DelegationForm
from apps.approvals.models import Delegation


class DelegationSerializer(serializers.ModelSerializer):
    delegator = serializers.SlugRelatedField(slug_field="username", read_only=True)
    delegate = serializers.SlugRelatedField(slug_field="username", read_only=True)
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Delegation
        fields = ["id", "delegator", "delegate", "team", "starts_at", "ends_at", "ended_at", "note", "created_at"]


class NewDelegationSerializer(serializers.Serializer):
    delegate = serializers.CharField(help_text="The colleague's username.")
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()
    team = serializers.CharField(required=False, allow_blank=True, default="", help_text="A team's slug; empty: all.")
    note = serializers.CharField(required=False, allow_blank=True, default="")


class DelegationList(APIView):
    @extend_schema(responses=DelegationSerializer(many=True))
    def get(self, request):
        return Response(DelegationSerializer(delegation.history_of(request.user), many=True).data)

    @extend_schema(request=NewDelegationSerializer, responses={201: DelegationSerializer})
    def post(self, request):
        given = NewDelegationSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        form = DelegationForm({**given.validated_data}, user=request.user)
        if not form.is_valid():
            raise ValidationError({field: [str(e) for e in errors] for field, errors in form.errors.items()})
        try:
            created = delegation.create_delegation(request.user, **form.cleaned_data)
        except delegation.DelegationRefused as exc:
            raise ValidationError({"detail": str(exc)}) from None
        return Response(DelegationSerializer(created).data, status=status.HTTP_201_CREATED)


class DelegationEnd(APIView):
    @extend_schema(request=None, responses=DelegationSerializer)
    def post(self, request, pk: int):
        if not delegation.history_of(request.user).filter(pk=pk).exists() and not request.user.is_platform_admin:
            raise Http404("No such delegation of yours.")
        try:
            ended = delegation.end_delegation(request.user, pk)
        except delegation.DelegationRefused as exc:
            raise ValidationError({"detail": str(exc)}) from None
        except (Delegation.DoesNotExist, PermissionDenied):
            raise Http404("No such delegation of yours.") from None
        return Response(DelegationSerializer(ended).data)


urlpatterns = [
    path("approvals/delegations", DelegationList.as_view(), name="api-delegations"),
    path("approvals/delegations/<int:pk>/end", DelegationEnd.as_view(), name="api-delegation-end"),
]
