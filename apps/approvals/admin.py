"""Platform admins manage webhook notification channels and high-risk waivers here; every save
goes through `apps.approvals.services`, so it is checked and audited. Secrets are write-only."""

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets

from apps.approvals import services
from apps.approvals.models import NotificationChannel, RiskWaiver


class ChannelForm(forms.ModelForm):
    url = forms.URLField(assume_scheme="https", max_length=500)
    secret = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False),
        help_text="The HMAC signing secret. Never shown again; leave blank to keep the current one.")

    class Meta:
        model = NotificationChannel
        fields = ["name", "url", "team", "event_kinds", "enabled"]


@admin.register(NotificationChannel)
class NotificationChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    list_display = ("name", "url", "team", "enabled")
    fields = ("name", "url", "secret", "team", "event_kinds", "enabled")

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        saved = services.save_channel(request.user, name=data["name"], url=data["url"], secret=data["secret"],
                                      team=data["team"], event_kinds=data["event_kinds"] or (),
                                      enabled=data["enabled"])
        obj.pk = saved.pk


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
