"""Platform pages: the platform admins' view of workers, queues, health, step types, teams and
people, plus the console-wide pieces (search, the workflow editor's live panels)."""
