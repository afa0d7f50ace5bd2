"""REST API of the approvals app (mounted under /api/v1/): the inbox, the history, one request,
and decisions (one, or in bulk) through the same domain functions as the pages.

A refused decision answers 400 when it is incomplete (a rejection without a comment, invalid
parameters, a gate's form filled in wrongly: `fields` names each field's problem), 403 without the role or when separation of duties forbids it, 409 when the
request was already decided.
"""

from django.urls import path
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.approvals import delegation_api, services
from apps.approvals.models import ApprovalRequest, Decision, ReasonCode, RequestKind, Verdict


class DecisionSerializer(serializers.ModelSerializer):
    person = serializers.SlugRelatedField(slug_field="username", read_only=True)
    on_behalf_of = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Decision
        fields = ["person", "on_behalf_of", "verdict", "option", "form_values", "reason_code", "comment",
                  "params_override", "skip_output", "self_approval", "suggestions_shown", "followed_suggestion",
                  "decided_at"]


class ApprovalRequestSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    group = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    workflow = serializers.CharField(source="run.workflow.name", read_only=True)
    step = serializers.CharField(source="step_run.step_id", read_only=True)
    decisions = DecisionSerializer(many=True, read_only=True)

    class Meta:
        model = ApprovalRequest
        fields = ["id", "kind", "state", "team", "workflow", "run", "step", "group", "quorum", "stage", "expires_at",
                  "on_expiry", "escalated_at", "due_at", "risky", "error_type", "error_message", "error_signature",
                  "outcome", "created_at", "decided_at", "decisions"]


class DecideSerializer(serializers.Serializer):
    verdict = serializers.ChoiceField(choices=Verdict.choices)
    comment = serializers.CharField(required=False, allow_blank=True, default="")
    reason_code = serializers.ChoiceField(choices=ReasonCode.choices, required=False, allow_blank=True, default="")
    params_override = serializers.DictField(required=False, allow_null=True, default=None,
                                            help_text="Retry: parameters to replace (checked against the step type).")
    skip_output = serializers.JSONField(required=False, allow_null=True, default=None,
                                        help_text="Skip: the output downstream steps will see.")
    option = serializers.CharField(required=False, allow_blank=True, default="",
                                   help_text="Approve a gate with `options`: the one chosen.")
    form = serializers.DictField(required=False, allow_null=True, default=None,
                                 help_text="Approve a gate with a `form`: its values (checked against the form).")


class BulkSerializer(serializers.Serializer):
    ids = serializers.ListField(child=serializers.IntegerField(), min_length=1, max_length=200)
    verdict = serializers.ChoiceField(choices=[(verdict, Verdict(verdict).label) for verdict in services.BULK_VERDICTS])
    comment = serializers.CharField(required=False, allow_blank=True, default="")
    reason_code = serializers.ChoiceField(choices=ReasonCode.choices, required=False, allow_blank=True, default="")
    confirm = serializers.BooleanField(required=False, default=False,
                                       help_text="Approve: needed, with a comment, when a selected step is high-risk. "
                                                 "Skip and abort: always needed.")


class Conflict(ValidationError):
    status_code = status.HTTP_409_CONFLICT


def _decided(call, *args, **kwargs):
    try:
        return call(*args, **kwargs)
    except services.DecisionExpired as exc:
        raise Conflict({"detail": str(exc), "expires_at": exc.expires_at.isoformat()}) from None
    except services.DecisionConflict as exc:
        raise Conflict({"detail": str(exc)}) from None
    except services.InvalidDecision as exc:
        raise ValidationError({"detail": str(exc), **({"fields": exc.fields} if exc.fields else {})}) from None


@extend_schema(parameters=[OpenApiParameter("scope", str, enum=["inbox", "history"],
                                            description="inbox (default): what you may decide; history: closed."),
                           OpenApiParameter("kind", str, enum=RequestKind.values)])
class ApprovalList(generics.ListAPIView):
    serializer_class = ApprovalRequestSerializer

    def get_queryset(self):
        params = self.request.query_params
        requests = (services.history_for if params.get("scope") == "history" else services.inbox_for)(self.request.user)
        if params.get("kind") in RequestKind.values:
            requests = requests.filter(kind=params["kind"])
        return requests.prefetch_related("decisions__person", "decisions__on_behalf_of")


class ApprovalDetail(APIView):
    @extend_schema(responses=ApprovalRequestSerializer)
    def get(self, request, pk: int):
        return Response(ApprovalRequestSerializer(services.get_request_for_user(request.user, pk)).data)


class ApprovalDecide(APIView):
    @extend_schema(request=DecideSerializer, responses=ApprovalRequestSerializer)
    def post(self, request, pk: int):
        approval_request = services.get_request_for_user(request.user, pk)
        given = DecideSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        # A delegate's decision is taken on behalf of the delegator, as on the pages.
        on_behalf_of = services.acting_for(request.user, approval_request, data["verdict"])
        if approval_request.kind == RequestKind.GATE:
            _decided(services.decide_gate, request.user, approval_request, data["verdict"], data["comment"],
                     option=data["option"], form_values=data["form"], on_behalf_of=on_behalf_of)
        else:
            _decided(services.decide_checkpoint, request.user, approval_request, data["verdict"],
                     reason_code=data["reason_code"], comment=data["comment"],
                     params_override=data["params_override"], skip_output=data["skip_output"],
                     on_behalf_of=on_behalf_of)
        return Response(ApprovalRequestSerializer(services.get_request_for_user(request.user, pk)).data)


class ApprovalBulk(APIView):
    @extend_schema(request=BulkSerializer, responses=inline_serializer("BulkResults", {
        "results": serializers.ListField(child=inline_serializer("BulkResult", {
            "request_id": serializers.IntegerField(), "ok": serializers.BooleanField(),
            "message": serializers.CharField()}))}))
    def post(self, request):
        given = BulkSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        results = _decided(services.bulk_decide, request.user, data["ids"], data["verdict"], comment=data["comment"],
                           reason_code=data["reason_code"], confirmed=data["confirm"])
        return Response({"results": [vars(result) for result in results]})


urlpatterns = [
    *delegation_api.urlpatterns,
    path("approvals", ApprovalList.as_view(), name="api-approvals"),
    path("approvals/bulk", ApprovalBulk.as_view(), name="api-approvals-bulk"),
    path("approvals/<int:pk>", ApprovalDetail.as_view(), name="api-approval"),
    path("approvals/<int:pk>/decide", ApprovalDecide.as_view(), name="api-approval-decide"),
]
