"""REST API of failure groups (apps.incidents.groups), mounted under /api/v1/ with the incidents':
the open groups, one group, and the group decision (the approvals app's bulk decision, member by
member: `results` say for each whether it was decided or refused, and why)."""

from django.http import Http404
from django.urls import path
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.approvals.models import ReasonCode, Verdict
from apps.approvals.services import InvalidDecision
from apps.incidents.groups import GROUP_VERDICTS, decide_group, failure_group, failure_groups


class MemberSerializer(serializers.Serializer):
    request_id = serializers.IntegerField(source="checkpoint.pk")
    run = serializers.IntegerField(source="checkpoint.run_id")
    workflow = serializers.CharField(source="checkpoint.run.workflow.name")
    step = serializers.CharField(source="checkpoint.step_run.step_id")
    risky = serializers.BooleanField(source="checkpoint.risky")
    failed_at = serializers.DateTimeField(allow_null=True)
    cause = serializers.CharField(help_text="How it follows from the root failure; empty when it is the same failure.")


class GroupSerializer(serializers.Serializer):
    key = serializers.CharField()
    runs = serializers.IntegerField()
    workflow = serializers.CharField(source="root.workflow")
    step = serializers.CharField(source="root.step_id")
    signature = serializers.SerializerMethodField(help_text="Empty when the root is another team's run.")
    root_run = serializers.SerializerMethodField()
    first_at = serializers.DateTimeField(allow_null=True)
    incident = serializers.IntegerField(source="incident_id", allow_null=True)
    members = MemberSerializer(many=True)

    def get_signature(self, group) -> str:
        return group.root.signature if group.root_visible else ""

    def get_root_run(self, group) -> int | None:
        return group.root.run_id if group.root_visible else None


class GroupDecisionSerializer(serializers.Serializer):
    verdict = serializers.ChoiceField(choices=[(verdict, Verdict(verdict).label) for verdict in GROUP_VERDICTS])
    reason_code = serializers.ChoiceField(choices=ReasonCode.choices)
    comment = serializers.CharField()
    confirm = serializers.BooleanField(required=False, default=False, help_text="Skip and abort: needed.")
    ids = serializers.ListField(child=serializers.IntegerField(), required=False, max_length=500,
                                help_text="The members to decide, as you saw them (default: the group's members now).")


def _group(user, key: str):
    group = failure_group(user, key)
    if group is None:
        raise Http404("No failures of this group wait for a decision in your teams.")
    return group


class GroupList(APIView):
    @extend_schema(responses=GroupSerializer(many=True))
    def get(self, request):
        return Response(GroupSerializer(failure_groups(request.user), many=True).data)


class GroupDetail(APIView):
    @extend_schema(responses=GroupSerializer)
    def get(self, request, key: str):
        return Response(GroupSerializer(_group(request.user, key)).data)


class GroupDecide(APIView):
    @extend_schema(request=GroupDecisionSerializer, responses=inline_serializer("GroupResults", {
        "results": serializers.ListField(child=inline_serializer("GroupResult", {
            "request_id": serializers.IntegerField(), "ok": serializers.BooleanField(),
            "message": serializers.CharField()}))}))
    def post(self, request, key: str):
        given = GroupDecisionSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        if not data.get("ids"):
            _group(request.user, key)
        try:
            results = decide_group(request.user, key, data["verdict"], reason_code=data["reason_code"],
                                   comment=data["comment"], confirmed=data["confirm"], ids=data.get("ids"))
        except InvalidDecision as exc:
            raise ValidationError({"detail": str(exc)}) from None
        return Response({"results": [vars(result) for result in results]})


urlpatterns = [
    path("incidents/groups", GroupList.as_view(), name="api-incident-groups"),
    path("incidents/groups/<str:key>", GroupDetail.as_view(), name="api-incident-group"),
    path("incidents/groups/<str:key>/decide", GroupDecide.as_view(), name="api-incident-group-decide"),
]
