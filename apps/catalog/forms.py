"""Forms for connections and allowed hosts, shared by the catalog pages and the Django admin.

The secret field is write-only: never pre-filled, and left blank it keeps the current secret.
"""

from django import forms

from apps.catalog.models import AllowedHost, Connection
from apps.catalog.services import CONNECTION_FIELDS


class ConnectionForm(forms.ModelForm):
    secret = forms.CharField(
        required=False, strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Password or token. Write-only: leave blank to keep the current one.",
    )
    clear_secret = forms.BooleanField(required=False, label="Remove the stored secret")

    class Meta:
        model = Connection
        fields = list(CONNECTION_FIELDS)
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("clear_secret") and cleaned.get("secret"):
            raise forms.ValidationError("Either type a new secret or remove the stored one, not both.")
        return cleaned

    def secret_change(self) -> str | None:
        """What to do with the secret: None keeps it, "" clears it, text replaces it."""
        if self.cleaned_data.get("clear_secret"):
            return ""
        return self.cleaned_data.get("secret") or None

    def public_fields(self) -> dict:
        # Not Meta.fields: the admin builds the form with its own field list, the secret included.
        return {field: self.cleaned_data[field] for field in CONNECTION_FIELDS}


class AllowedHostForm(forms.ModelForm):
    class Meta:
        model = AllowedHost
        fields = ["pattern", "allow_private", "note"]
        labels = {"pattern": "Host", "allow_private": "Allow private addresses"}
