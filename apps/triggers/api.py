"""REST API of the triggers app (mounted under /api/v1/), on the same domain functions as the
pages: team-scoped reads (404 outside your teams), backfills and replaying set-aside queue
messages need the operator role (403)."""

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.access import get_for_user
from apps.accounts.models import Role
from apps.runs.models import Run
from apps.triggers import dead_letters, services
from apps.triggers.models import Backfill, DeadLetter, DeadLetterState, TriggerEvent
from apps.workflows.models import Workflow


class BackfillRequestSerializer(serializers.Serializer):
    start = serializers.DateTimeField(help_text="First instant of the range (ISO 8601, with an offset).")
    end = serializers.DateTimeField(help_text="Last instant of the range.")


class BackfillSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()

    class Meta:
        model = Backfill
        fields = ["id", "workflow", "start", "end", "state", "created_at", "progress"]

    def get_progress(self, backfill) -> dict:
        return services.backfill_progress(backfill)


class TriggerEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = TriggerEvent
        fields = ["id", "source", "dedup_key", "payload", "received_at", "slot_at", "batch", "run", "error"]


class DeadLetterSerializer(serializers.ModelSerializer):
    replayed_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = DeadLetter
        fields = ["id", "workflow", "source", "connection", "queue", "message_key", "body", "error", "deliveries",
                  "state", "created_at", "replayed_at", "replayed_by", "replay_outcome"]
        read_only_fields = fields


class NextRunSerializer(serializers.Serializer):
    at = serializers.DateTimeField(help_text="The start, in UTC.")
    local = serializers.DateTimeField(help_text="The start in the schedule's time zone.")
    timezone = serializers.CharField()
    cron = serializers.CharField()


class NextRunsView(APIView):
    @extend_schema(parameters=[OpenApiParameter("n", OpenApiTypes.INT, description="How many (at most 50).")],
                   responses=NextRunSerializer(many=True))
    def get(self, request, pk):
        workflow = get_for_user(Workflow.objects.all(), request.user, pk)
        try:
            upcoming = services.next_run_times(workflow, n=min(int(request.query_params.get("n", 5)), 50))
        except (services.TriggerError, ValueError) as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response([{"at": slot["at"], "local": slot["local"].isoformat(), "timezone": slot["timezone"],
                          "cron": slot["cron"]} for slot in upcoming])


class ScheduleStatusSerializer(serializers.Serializer):
    schedules = serializers.IntegerField(help_text="How many schedule triggers the workflow has.")
    paused = serializers.IntegerField(help_text="How many of them are paused.")
    paused_at = serializers.DateTimeField(allow_null=True)
    paused_by = serializers.CharField(help_text="Who paused them last (empty when none is paused).")


class SchedulesPausedView(APIView):
    """Pause (`/pause`) or resume (`/resume`) every schedule of a workflow; the operator role.
    Resuming skips the slots that fell in the pause."""

    paused = True

    @extend_schema(request=None, responses={200: ScheduleStatusSerializer, 409: OpenApiTypes.OBJECT})
    def post(self, request, pk):
        workflow = get_for_user(Workflow.objects.all(), request.user, pk, role=Role.OPERATOR)
        try:
            status_now = services.set_schedules_paused(request.user, workflow, self.paused)
        except services.TriggerError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(ScheduleStatusSerializer(status_now).data)


class BackfillCreateView(APIView):
    @extend_schema(request=BackfillRequestSerializer, responses={201: BackfillSerializer})
    def post(self, request, pk):
        workflow = get_for_user(Workflow.objects.all(), request.user, pk, role=Role.OPERATOR)
        given = BackfillRequestSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        try:
            backfill = services.create_backfill(request.user, workflow, given.validated_data["start"],
                                                given.validated_data["end"])
        except services.TriggerError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(BackfillSerializer(backfill).data, status=status.HTTP_201_CREATED)


class BackfillView(APIView):
    @extend_schema(responses=BackfillSerializer)
    def get(self, request, pk):
        return Response(BackfillSerializer(get_for_user(Backfill.objects.all(), request.user, pk)).data)


class BackfillCancelView(APIView):
    @extend_schema(request=None, responses={200: BackfillSerializer, 409: OpenApiTypes.OBJECT})
    def post(self, request, pk):
        backfill = get_for_user(Backfill.objects.all(), request.user, pk, role=Role.OPERATOR)
        try:
            backfill = services.cancel_backfill(request.user, backfill)
        except services.TriggerError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(BackfillSerializer(backfill).data)


class RunTriggerEventsView(APIView):
    @extend_schema(responses=TriggerEventSerializer(many=True))
    def get(self, request, pk):
        run = get_for_user(Run.objects.all(), request.user, pk)
        return Response(TriggerEventSerializer(services.events_of_run(run)[:500], many=True).data)


class WorkflowDeadLettersView(generics.ListAPIView):
    """Queue messages of a workflow set aside after failing on every delivery, newest first."""

    serializer_class = DeadLetterSerializer

    @extend_schema(parameters=[OpenApiParameter("state", OpenApiTypes.STR, enum=DeadLetterState.values,
                                                description="Only set-aside or only replayed messages.")])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        workflow = get_for_user(Workflow.objects.all(), self.request.user, self.kwargs["pk"])
        letters = workflow.dead_letters.select_related("replayed_by")
        state = self.request.query_params.get("state")
        return letters.filter(state=state) if state in DeadLetterState.values else letters


class DeadLetterReplayView(APIView):
    @extend_schema(request=None, responses={200: DeadLetterSerializer, 409: OpenApiTypes.OBJECT},
                   description="Record the message again as if just delivered (a run already started for it is "
                               "not started twice). 409 when already replayed, or when it fails again.")
    def post(self, request, pk):
        letter = get_for_user(DeadLetter.objects.all(), request.user, pk, role=Role.OPERATOR)
        try:
            return Response(DeadLetterSerializer(dead_letters.replay(request.user, letter.pk)).data)
        except services.TriggerError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)


urlpatterns = [
    path("workflows/<int:pk>/next-runs", NextRunsView.as_view(), name="api-workflow-next-runs"),
    path("workflows/<int:pk>/backfills", BackfillCreateView.as_view(), name="api-workflow-backfills"),
    path("workflows/<int:pk>/schedules/pause", SchedulesPausedView.as_view(paused=True),
         name="api-workflow-schedules-pause"),
    path("workflows/<int:pk>/schedules/resume", SchedulesPausedView.as_view(paused=False),
         name="api-workflow-schedules-resume"),
    path("backfills/<int:pk>", BackfillView.as_view(), name="api-backfill"),
    path("backfills/<int:pk>/cancel", BackfillCancelView.as_view(), name="api-backfill-cancel"),
    path("runs/<int:pk>/trigger-events", RunTriggerEventsView.as_view(), name="api-run-trigger-events"),
    path("workflows/<int:pk>/dead-letters", WorkflowDeadLettersView.as_view(), name="api-workflow-dead-letters"),
    path("dead-letters/<int:pk>/replay", DeadLetterReplayView.as_view(), name="api-dead-letter-replay"),
]
