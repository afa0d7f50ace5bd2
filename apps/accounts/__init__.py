"""Teams, people, their roles in teams, approver groups and API tokens."""
