"""Platform admins manage webhook channels here; every save goes through
`apps.notifications.services.save_channel`, so it is checked and audited. Secrets are write-only."""

from django import forms
from django.contrib import admin

from apps.notifications import services
from apps.notifications.models import NotificationChannel


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
