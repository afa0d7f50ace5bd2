"""Forms of the incident pages."""

from django import forms

from apps.incidents.models import IncidentStatus, RootCauseCategory


class ResolveForm(forms.Form):
    category = forms.ModelChoiceField(queryset=RootCauseCategory.objects.filter(is_active=True),
                                      label="Root-cause category", empty_label="Choose the category")
    root_cause_description = forms.CharField(label="What was the root cause?", widget=forms.Textarea(attrs={"rows": 3}))
    resolution = forms.CharField(label="What fixed it?", widget=forms.Textarea(attrs={"rows": 3}))


class OpenIncidentForm(forms.Form):
    team = forms.ModelChoiceField(queryset=None, label="Team", empty_label="Choose your team")
    title = forms.CharField(max_length=300, label="Title", help_text="What failed, in a few words.")
    description = forms.CharField(required=False, label="What happened", widget=forms.Textarea(attrs={"rows": 4}))
    error_message = forms.CharField(required=False, label="Error message", widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args, teams, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = teams


class IncidentFilterForm(forms.Form):
    status = forms.ChoiceField(required=False, label="Status", choices=[("", "Any status"), *IncidentStatus.choices])
    team = forms.CharField(required=False, label="Team")
    category = forms.CharField(required=False, label="Root-cause category")


class CategoryForm(forms.ModelForm):
    class Meta:
        model = RootCauseCategory
        fields = ["slug", "name", "description", "is_active"]
