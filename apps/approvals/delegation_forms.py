"""The form a person fills in to delegate their decisions while away (page and API share its rules
through `delegation.create_delegation`; this only parses what was typed)."""

from django import forms
from django.utils import timezone

from apps.accounts.access import visible_team_ids, visible_teams
from apps.accounts.models import Membership, User


class DelegationForm(forms.Form):
    delegate = forms.ModelChoiceField(queryset=User.objects.none(), to_field_name="username",
                                      help_text="A colleague in your teams; they decide in their own name, for you.")
    starts_at = forms.DateTimeField(label="From", widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    ends_at = forms.DateTimeField(label="Until", widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    team = forms.ModelChoiceField(queryset=None, required=False, to_field_name="slug", empty_label="every team",
                                  help_text="Only this team's requests; empty: every team where you decide.")
    note = forms.CharField(required=False, max_length=200, help_text="Shown to your delegate, e.g. why you are away.")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        teams = visible_team_ids(user)
        colleagues = User.objects.filter(is_active=True).exclude(pk=user.pk)
        if teams is not None:
            colleagues = colleagues.filter(pk__in=Membership.objects.filter(team_id__in=teams).values("user_id"))
        self.fields["delegate"].queryset = colleagues.order_by("username")
        self.fields["delegate"].label_from_instance = lambda person: (
            person.username if person.display_name == person.username else f"{person.display_name} ({person.username})")
        self.fields["team"].queryset = visible_teams(user)
        if not self.is_bound:
            self.initial.setdefault("starts_at", timezone.localtime().replace(second=0, microsecond=0))
