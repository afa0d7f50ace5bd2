"""Forms for connections and allowed hosts, shared by the catalog pages and the Django admin.

The secret field is write-only: never pre-filled, and left blank it keeps the current secret.
Who may use the connection (owning team, shared teams, all teams) is part of the same form; the
views hand it to `services.update_connection` with the other fields, never save it through the form.
"""

from django import forms

from apps.catalog.models import AllowedHost, Connection
from apps.catalog.services import CONNECTION_FIELDS, SHARING_FIELDS


class ConnectionForm(forms.ModelForm):
    secret = forms.CharField(
        required=False, strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Password or token. Write-only: leave blank to keep the current one.",
    )
    clear_secret = forms.BooleanField(required=False, label="Remove the stored secret")

    class Meta:
        model = Connection
        fields = [*CONNECTION_FIELDS, *SHARING_FIELDS]
        widgets = {"description": forms.Textarea(attrs={"rows": 3}), "shared_with": forms.CheckboxSelectMultiple}
        labels = {"team": "Owning team", "shared_with": "Also shared with", "shared_with_all": "Shared with all teams"}

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("clear_secret") and cleaned.get("secret"):
            raise forms.ValidationError("Either type a new secret or remove the stored one, not both.")
        if not (cleaned.get("team") or cleaned.get("shared_with") or cleaned.get("shared_with_all")):
            self.add_error("team", "Say who may use it: choose the team that owns it, the teams to share it with, "
                                   "or all teams.")
        return cleaned

    def secret_change(self) -> str | None:
        """What to do with the secret: None keeps it, "" clears it, text replaces it."""
        if self.cleaned_data.get("clear_secret"):
            return ""
        return self.cleaned_data.get("secret") or None

    def public_fields(self) -> dict:
        # Not Meta.fields: the admin builds the form with its own field list, the secret included.
        return {field: self.cleaned_data[field] for field in CONNECTION_FIELDS}

    def sharing(self) -> dict:
        return {"team": self.cleaned_data["team"], "shared_with": list(self.cleaned_data["shared_with"]),
                "shared_with_all": self.cleaned_data["shared_with_all"]}


class AllowedHostForm(forms.ModelForm):
    class Meta:
        model = AllowedHost
        fields = ["pattern", "allow_private", "note"]
        labels = {"pattern": "Host", "allow_private": "Allow private addresses"}
