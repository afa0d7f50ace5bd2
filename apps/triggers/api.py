"""REST API of the triggers app (mounted under /api/v1/), on the same domain functions as the
pages: team-scoped reads (404 outside your teams), backfills need the operator role (403)."""

from django.urls import path
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.access import get_for_user
from apps.accounts.models import Role
from apps.runs.models import Run
from apps.triggers import services
from apps.triggers.models import Backfill, TriggerEvent
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


class NextRunsView(APIView):
    def get(self, request, pk):
        workflow = get_for_user(Workflow.objects.all(), request.user, pk)
        try:
            upcoming = services.next_run_times(workflow, n=min(int(request.query_params.get("n", 5)), 50))
        except (services.TriggerError, ValueError) as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response([{"at": slot["at"], "local": slot["local"].isoformat(), "timezone": slot["timezone"],
                          "cron": slot["cron"]} for slot in upcoming])


class BackfillCreateView(APIView):
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
    def get(self, request, pk):
        return Response(BackfillSerializer(get_for_user(Backfill.objects.all(), request.user, pk)).data)


class BackfillCancelView(APIView):
    def post(self, request, pk):
        backfill = get_for_user(Backfill.objects.all(), request.user, pk, role=Role.OPERATOR)
        try:
            backfill = services.cancel_backfill(request.user, backfill)
        except services.TriggerError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(BackfillSerializer(backfill).data)


class RunTriggerEventsView(APIView):
    def get(self, request, pk):
        run = get_for_user(Run.objects.all(), request.user, pk)
        return Response(TriggerEventSerializer(services.events_of_run(run)[:500], many=True).data)


urlpatterns = [
    path("workflows/<int:pk>/next-runs/", NextRunsView.as_view(), name="api-workflow-next-runs"),
    path("workflows/<int:pk>/backfills/", BackfillCreateView.as_view(), name="api-workflow-backfills"),
    path("backfills/<int:pk>/", BackfillView.as_view(), name="api-backfill"),
    path("backfills/<int:pk>/cancel/", BackfillCancelView.as_view(), name="api-backfill-cancel"),
    path("runs/<int:pk>/trigger-events/", RunTriggerEventsView.as_view(), name="api-run-trigger-events"),
]
