"""Read-only admin views of runs for platform admins; states change only through the engine."""

from django.contrib import admin

from apps.runs.models import EffectLedger, Run, StepAttempt, StepRun


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = ["id", "workflow", "state", "trigger", "team", "created_at", "finished_at"]
    list_filter = ["state", "trigger", "team"]


@admin.register(StepRun)
class StepRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "run", "step_id", "state", "attempt", "finished_at"]
    list_filter = ["state"]


@admin.register(StepAttempt)
class StepAttemptAdmin(ReadOnlyAdmin):
    list_display = ["id", "step_run", "kind", "number", "state", "worker", "started_at", "ended_at", "error_type"]
    list_filter = ["state", "kind"]
    search_fields = ["idempotency_key", "error_signature"]


@admin.register(EffectLedger)
class EffectLedgerAdmin(ReadOnlyAdmin):
    list_display = ["id", "idempotency_key", "kind", "target", "recorded_at"]
    search_fields = ["idempotency_key", "target"]
