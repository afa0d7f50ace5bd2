from django import forms

from apps.monitoring.models import MonitorSettings


class MonitorSettingsForm(forms.ModelForm):
    class Meta:
        model = MonitorSettings
        fields = ["history_runs", "min_history", "threshold", "check_duration", "check_records"]
        labels = {
            "history_runs": "Compare with the last N successful runs",
            "min_history": "Start alerting after this many runs",
            "threshold": "Alert beyond this robust z-score",
            "check_duration": "Alert on unusual duration",
            "check_records": "Alert on unusual record counts",
        }

    def clean_threshold(self):
        threshold = self.cleaned_data["threshold"]
        if threshold <= 0:
            raise forms.ValidationError("Use a positive number; 3.5 flags roughly one run in a thousand by chance.")
        return threshold

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("history_runs") and cleaned.get("min_history") and \
                cleaned["min_history"] > cleaned["history_runs"]:
            self.add_error("min_history", "Must not be more than the number of runs compared with.")
        return cleaned
