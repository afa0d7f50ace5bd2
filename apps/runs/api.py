"""REST API of the runs app (mounted under /api/v1/).

Reads are team-scoped like the pages (404 outside your teams); starting runs and acting on them
needs the operator role in the run's team (403 otherwise). Retrying or skipping a failed step, and
ending a paused run, are decisions on its checkpoint: they go through the approvals app's decision
function, with its permission table, a reason code and a comment (400 without). An action the run's
state no longer allows answers 409 with the engine's message; inputs that do not fit the workflow
answer 400 with one message per bad field under `inputs`.

A step's log lines are read forward from a cursor (`after`, the last line's id), so a client that
follows them polls for what is new and never misses a line written between two polls.
"""

from dataclasses import asdict

from django.db.models import prefetch_related_objects
from django.urls import path
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.access import visible_teams
from apps.accounts.models import Role
from apps.approvals import services as approvals
from apps.approvals.models import ReasonCode, Verdict
from apps.runs import engine, history
from apps.runs.investigation import HINTS, investigate
from apps.runs.models import Run, RunState, StepAttempt, StepLogLine, StepRun, StepState, Trigger
from apps.runs.services import (
    LOG_LEVELS_FROM, get_run_for_user, get_step_of_run, get_step_run_for_user, runs_for, start_workflow_run,
    step_log_lines,
)
from apps.workflows.services import get_workflow_for_user


class AttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = StepAttempt
        fields = ["id", "kind", "number", "state", "step_type", "queue", "params", "worker", "deliveries",
                  "queued_at", "started_at", "ended_at", "heartbeat_at", "duration_ms", "output", "output_artifact",
                  "error_type", "error_message", "error_signature", "records_in", "records_out",
                  "records_rejected", "log_lines_dropped", "retry_verdict"]


class FactSerializer(serializers.Serializer):
    """One thing that changed before a step failed (apps.runs.investigation.Fact)."""

    kind = serializers.ChoiceField(choices=sorted(HINTS))
    text = serializers.CharField()
    url = serializers.CharField(help_text="Where to look (a path of this site), or empty.")
    link_label = serializers.CharField()
    hints = serializers.DictField(child=serializers.FloatField(),
                                  help_text="Root-cause category slug -> log-odds it adds in the ranking.")


class StepRunSerializer(serializers.ModelSerializer):
    attempts = AttemptSerializer(many=True, read_only=True)
    investigation = serializers.SerializerMethodField(
        help_text="A failed step's: what changed since the last success of the same step, the steps it needs, "
                  "other runs failing with the same error. Empty for a step that has not failed.")

    class Meta:
        model = StepRun
        fields = ["id", "step_id", "position", "step_type", "state", "skip_reason", "attempt", "params_override",
                  "output", "decision", "decision_input", "progress", "reused_from", "error_type", "error_message",
                  "started_at", "finished_at", "attempts", "investigation"]

    @extend_schema_field(FactSerializer(many=True))
    def get_investigation(self, row: StepRun) -> list[dict]:
        return [asdict(fact) for fact in investigate(row)] if row.state == StepState.FAILED else []


class RunSerializer(serializers.ModelSerializer):
    workflow_name = serializers.CharField(source="workflow.name", read_only=True)
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    version = serializers.IntegerField(source="version.number", read_only=True)
    started_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Run
        fields = ["id", "workflow", "workflow_name", "team", "version", "state", "inputs", "trigger",
                  "trigger_detail", "started_by", "rerun_of", "failure_summary", "created_at", "started_at",
                  "finished_at"]


class RunDetailSerializer(RunSerializer):
    step_runs = StepRunSerializer(many=True, read_only=True)
    actions = serializers.SerializerMethodField(
        help_text="What you may do to the run now (a paused run's abort and compensate are decided at its checkpoint).")

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "step_runs", "actions"]

    @extend_schema_field(serializers.ListField(child=serializers.ChoiceField(choices=sorted(engine.RUN_ACTIONS))))
    def get_actions(self, run: Run) -> list[str]:
        return sorted(engine.allowed_actions(run, self.context["user"]))


class LogLineSerializer(serializers.ModelSerializer):
    attempt = serializers.IntegerField(source="attempt.number", read_only=True)

    class Meta:
        model = StepLogLine
        fields = ["id", "attempt", "at", "level", "message", "fields"]


ConflictSerializer = inline_serializer("RunConflict", {"detail": serializers.CharField()})
StartSerializer = inline_serializer("StartRun", {
    "inputs": serializers.DictField(required=False, help_text="Values for the workflow's declared inputs."),
})
InputsInvalidSerializer = inline_serializer("InputsInvalid", {
    "inputs": serializers.DictField(child=serializers.CharField(), help_text="Input name -> what is wrong."),
})


def _detail(run: Run, user) -> dict:
    """The run with its steps, and the actions `user` may take on it now (engine.RUN_ACTIONS)."""
    run = Run.objects.select_related("workflow", "team", "version", "started_by") \
        .prefetch_related("step_runs__attempts").get(pk=run.pk)
    return RunDetailSerializer(run, context={"user": user}).data


def _started_detail(run: Run, workflow, user) -> dict:
    """`_detail` of a run start_run just returned: the run as it left it (team, version and starter
    in hand) with its steps and attempts read, instead of reading the run and its joins back."""
    run.workflow = workflow
    prefetch_related_objects([run], "step_runs__attempts")
    return RunDetailSerializer(run, context={"user": user}).data


def _conflict(error: engine.EngineError) -> Response:
    return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)


class RunList(generics.ListAPIView):
    serializer_class = RunSerializer

    def get_queryset(self):
        return runs_for(self.request.user, self.request.query_params)[0]

    @extend_schema(parameters=[
        OpenApiParameter("workflow", int, description="Only runs of this workflow (its id)."),
        OpenApiParameter("state", str, enum=RunState.values),
        OpenApiParameter("team", str, description="Only this team's runs (its slug)."),
        OpenApiParameter("trigger", str, enum=Trigger.values),
        OpenApiParameter("since", str, description="Created on or after this day (YYYY-MM-DD)."),
        OpenApiParameter("until", str, description="Created on or before this day (YYYY-MM-DD)."),
    ])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class RunDetail(APIView):
    @extend_schema(responses=RunDetailSerializer)
    def get(self, request, pk: int):
        return Response(_detail(get_run_for_user(request.user, pk), request.user))


class StartRun(APIView):
    @extend_schema(request=StartSerializer, responses={201: RunDetailSerializer, 400: InputsInvalidSerializer},
                   description="Start a run of the workflow's current version.")
    def post(self, request, pk: int):
        workflow = get_workflow_for_user(request.user, pk, role=Role.OPERATOR)
        provided = request.data.get("inputs", {}) if isinstance(request.data, dict) else request.data
        try:
            run = start_workflow_run(request.user, workflow, provided, trigger=Trigger.API)
        except engine.InvalidInputs as invalid:
            return Response({"inputs": invalid.errors}, status=status.HTTP_400_BAD_REQUEST)
        return Response(_started_detail(run, workflow, request.user), status=status.HTTP_201_CREATED)


def _run_action(action, *, creates: bool = False, description: str):
    class RunAction(APIView):
        @extend_schema(request=None, responses={200: RunDetailSerializer, 201: RunDetailSerializer,
                                                409: ConflictSerializer}, description=description)
        def post(self, request, pk: int):
            run = get_run_for_user(request.user, pk, role=Role.OPERATOR)
            try:
                result = action(request.user, run)
            except engine.EngineError as error:
                return _conflict(error)
            return Response(_detail(result if creates else run, request.user),
                            status=status.HTTP_201_CREATED if creates else status.HTTP_200_OK)

    RunAction.__name__ = f"Run{action.__name__.title().replace('_', '')}"
    return RunAction.as_view()


def _reason_fields(**extra) -> dict:
    return {"reason_code": serializers.ChoiceField(choices=ReasonCode.choices, required=False, allow_blank=True,
                                                   default=""),
            "comment": serializers.CharField(required=False, allow_blank=True, default=""), **extra}


def _decided(call, *args, **kwargs) -> Response | None:
    """None when the decision was taken, else the refusal (403 comes from PermissionDenied itself)."""
    try:
        call(*args, **kwargs)
    except approvals.InvalidDecision as invalid:
        return Response({"detail": str(invalid)}, status=status.HTTP_400_BAD_REQUEST)
    except approvals.DecisionConflict as conflict:
        return Response({"detail": str(conflict)}, status=status.HTTP_409_CONFLICT)
    return None


def _end_run(choice: str, description: str):
    given = inline_serializer(f"EndRun{choice.title()}", _reason_fields())

    class EndRun(APIView):
        @extend_schema(request=given, responses={200: RunDetailSerializer, 400: ConflictSerializer,
                                                 409: ConflictSerializer}, description=description)
        def post(self, request, pk: int):
            run = get_run_for_user(request.user, pk, role=Role.OPERATOR)
            data = _valid(given, request)
            refused = _decided(approvals.end_run, request.user, run, choice, reason_code=data["reason_code"],
                               comment=data["comment"])
            return refused or Response(_detail(run, request.user))

    EndRun.__name__ = f"EndRun{choice.title()}"
    return EndRun.as_view()


def _valid(schema: serializers.Serializer, request) -> dict:
    """The request's body checked by `schema` (an inline serializer, as the OpenAPI schema shows it)."""
    given = type(schema)(data=request.data if isinstance(request.data, dict) else {})
    given.is_valid(raise_exception=True)
    return given.validated_data


RetrySerializer = inline_serializer("RetryStep", _reason_fields(
    params_override=serializers.DictField(required=False, allow_null=True, default=None,
                                          help_text="Parameters to replace, checked against the step type.")))
SkipSerializer = inline_serializer("SkipStep", _reason_fields(
    output=serializers.JSONField(required=False, allow_null=True, default=None,
                                 help_text="The output the steps after it will see.")))


class RetryStep(APIView):
    @extend_schema(request=RetrySerializer, responses={200: RunDetailSerializer, 400: ConflictSerializer,
                                                       409: ConflictSerializer},
                   description="Decide the step's checkpoint: run the failed step again, optionally with some "
                               "parameters replaced (a risky step's edited parameters are approved again).")
    def post(self, request, pk: int):
        row = get_step_run_for_user(request.user, pk, role=Role.OPERATOR)
        data = _valid(RetrySerializer, request)
        refused = _decided(approvals.decide_step, request.user, row, Verdict.RETRY, reason_code=data["reason_code"],
                           comment=data["comment"], params_override=data["params_override"])
        return refused or Response(_detail(row.run, request.user))


class SkipStep(APIView):
    @extend_schema(request=SkipSerializer, responses={200: RunDetailSerializer, 400: ConflictSerializer,
                                                      409: ConflictSerializer},
                   description="Decide the step's checkpoint: skip the failed step; the steps after it see `output`.")
    def post(self, request, pk: int):
        row = get_step_run_for_user(request.user, pk, role=Role.OPERATOR)
        data = _valid(SkipSerializer, request)
        refused = _decided(approvals.decide_step, request.user, row, Verdict.SKIP, reason_code=data["reason_code"],
                           comment=data["comment"], skip_output=data["output"])
        return refused or Response(_detail(row.run, request.user))


# Lines per answer: a follower asks again from the last one it got.
LOG_LINES_PER_ANSWER = 500
StepLogsSerializer = inline_serializer("StepLogs", {
    "step_run": serializers.IntegerField(),
    "state": serializers.ChoiceField(choices=StepState.choices, help_text="The step's state when the lines were read."),
    "lines": LogLineSerializer(many=True),
    "more": serializers.BooleanField(help_text="More lines follow the last one: ask again with its id as `after`."),
})


class StepLogs(APIView):
    @extend_schema(parameters=[
        OpenApiParameter("after", int, description="Only lines after this one (a line's id); 0 or absent: from the start."),
        OpenApiParameter("level", str, enum=list(LOG_LEVELS_FROM), description="This level and the ones above."),
        OpenApiParameter("q", str, description="Only lines whose message contains this text (any case)."),
    ], responses=StepLogsSerializer, description=f"A step's log lines, oldest first, at most {LOG_LINES_PER_ANSWER}.")
    def get(self, request, pk: int, step_id: str):
        step_run = get_step_of_run(get_run_for_user(request.user, pk), step_id)
        after = request.query_params.get("after", "0")
        lines = step_log_lines(step_run, request.query_params.get("level", ""),
                               search=request.query_params.get("q", "").strip()[:200]).select_related("attempt") \
            .filter(pk__gt=int(after) if after.isdigit() else 0).order_by("pk")[:LOG_LINES_PER_ANSWER + 1]
        lines = list(lines)
        return Response({"step_run": step_run.pk, "state": step_run.state,
                         "lines": LogLineSerializer(lines[:LOG_LINES_PER_ANSWER], many=True).data,
                         "more": len(lines) > LOG_LINES_PER_ANSWER})


class RunHistorySerializer(serializers.Serializer):
    last_runs = serializers.ListField(child=serializers.DictField(), help_text="Oldest first: id, state, seconds.")
    success_rate = serializers.IntegerField(allow_null=True, help_text="Percent of the window's finished runs.")
    finished = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    p50_seconds = serializers.FloatField(allow_null=True)
    p95_seconds = serializers.FloatField(allow_null=True)
    window_days = serializers.IntegerField()
    charts = serializers.ListField(child=serializers.DictField(), help_text="Each chart's labels and values.")


def _history(summary, charts) -> dict:
    return {"last_runs": [{"id": bar.pk, "state": bar.state, "seconds": bar.seconds} for bar in summary.bars],
            "success_rate": summary.success_rate, "finished": summary.finished, "succeeded": summary.succeeded,
            "p50_seconds": summary.p50, "p95_seconds": summary.p95, "window_days": history.WINDOW_DAYS,
            "charts": [{"key": chart.key, **chart.data} for chart in charts]}


class WorkflowHistory(APIView):
    """What the workflow page shows of its runs: the last runs, success rate, p50/p95 durations and
    the charts' data (duration per run with the SLA, success rate per day, records per run)."""

    @extend_schema(responses=RunHistorySerializer)
    def get(self, request, pk):
        workflow = get_workflow_for_user(request.user, pk)
        version = workflow.current_version
        sla = (version.plan.sla or {}).get("max_duration") if version else None
        return Response(_history(*history.workflow_history(workflow, sla)))


class TeamDashboard(APIView):
    """The team dashboard's charts: finished runs, success rate and average duration per day."""

    @extend_schema(responses=inline_serializer("TeamDashboard", {
        "team": serializers.CharField(), "window_days": serializers.IntegerField(),
        "charts": serializers.ListField(child=serializers.DictField())}))
    def get(self, request, slug):
        team = visible_teams(request.user).filter(slug=slug).first()
        if team is None:
            raise NotFound(f"You are in no team {slug!r}.")
        return Response({"team": team.slug, "window_days": history.WINDOW_DAYS,
                         "charts": [{"key": chart.key, **chart.data} for chart in history.team_dashboard(team)]})


urlpatterns = [
    path("runs", RunList.as_view(), name="api-runs"),
    path("runs/<int:pk>", RunDetail.as_view(), name="api-run"),
    path("runs/<int:pk>/cancel", _run_action(engine.cancel_run, description="Cancel an unfinished run."),
         name="api-run-cancel"),
    path("runs/<int:pk>/rerun", _run_action(engine.rerun_from_failure, creates=True,
                                            description="Start a new run that keeps the steps that succeeded."),
         name="api-run-rerun"),
    path("runs/<int:pk>/abort", _end_run(Verdict.ABORT, "End the run failed, without undo; a paused run's "
                                                        "checkpoint is decided (reason code and comment)."),
         name="api-run-abort"),
    path("runs/<int:pk>/compensate-and-abort",
         _end_run(Verdict.COMPENSATE, "Undo completed steps, then end the run failed; a paused run's checkpoint is "
                                      "decided (reason code and comment)."),
         name="api-run-compensate-and-abort"),
    path("runs/<int:pk>/steps/<str:step_id>/logs", StepLogs.as_view(), name="api-step-logs"),
    path("step-runs/<int:pk>/retry", RetryStep.as_view(), name="api-step-retry"),
    path("step-runs/<int:pk>/skip", SkipStep.as_view(), name="api-step-skip"),
    path("workflows/<int:pk>/runs", StartRun.as_view(), name="api-workflow-runs"),
    path("workflows/<int:pk>/history", WorkflowHistory.as_view(), name="api-workflow-history"),
    path("teams/<slug:slug>/dashboard", TeamDashboard.as_view(), name="api-team-dashboard"),
]
