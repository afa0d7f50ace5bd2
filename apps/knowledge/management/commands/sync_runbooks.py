"""`manage.py sync_runbooks`: re-read runbooks/ and re-index the runbooks whose content changed."""

from django.core.management.base import BaseCommand

from apps.knowledge.indexing import reindex_runbooks
from apps.knowledge.runbooks import sync_runbooks


class Command(BaseCommand):
    help = "Re-read runbooks/ and re-index only the runbooks whose content hash changed."

    def handle(self, *args, **options):
        changed, removed = sync_runbooks()
        if changed or removed:
            reindex_runbooks(changed, removed)
        self.stdout.write(self.style.SUCCESS(f"{len(changed)} runbooks changed, {len(removed)} sections removed."))
