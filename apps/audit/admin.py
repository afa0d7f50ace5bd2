from django.contrib import admin

from apps.audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the audit log is append-only, even for superusers."""

    list_display = ("sequence", "occurred_at", "actor_label", "action", "object_type", "object_id", "team_label",
                    "key_id")
    list_filter = ("action", "object_type", "team_label")
    search_fields = ("actor_label", "object_id", "action")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
