"""Platform admins manage high-risk waivers and the step types that may never be approved
automatically here; every save goes through `apps.approvals.services`, so it is checked and audited."""

from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets

from apps.approvals import services
from apps.approvals.models import AutoApprovalBan, RiskWaiver


@admin.register(RiskWaiver)
class RiskWaiverAdmin(admin.ModelAdmin):
    list_display = ("team", "step_type", "granted_by", "granted_at")
    fields = ("team", "step_type", "reason")

    def has_change_permission(self, request, obj=None):
        # A waiver is granted or revoked, never edited in place, so the audit log shows each change.
        return obj is None

    def get_readonly_fields(self, request, obj=None):
        return flatten_fieldsets(self.get_fieldsets(request, obj)) if obj else ()

    def save_model(self, request, obj, form, change):
        obj.pk = services.grant_waiver(request.user, team=obj.team, step_type=obj.step_type, reason=obj.reason).pk

    def delete_model(self, request, obj):
        services.revoke_waiver(request.user, obj.pk)


@admin.register(AutoApprovalBan)
class AutoApprovalBanAdmin(admin.ModelAdmin):
    list_display = ("step_type", "reason", "forbidden_by", "forbidden_at")
    fields = ("step_type", "reason")

    def get_readonly_fields(self, request, obj=None):
        # The type is the rule's identity; to stop forbidding it, delete the rule.
        return ("step_type",) if obj else ()

    def save_model(self, request, obj, form, change):
        obj.pk = services.forbid_auto_approval(request.user, step_type=obj.step_type, reason=obj.reason).pk

    def delete_model(self, request, obj):
        services.allow_auto_approval(request.user, obj.pk)
