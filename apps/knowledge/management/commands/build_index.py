"""`manage.py build_index`: read the runbooks and rebuild the whole knowledge index, with a progress bar."""

from django.core.management.base import BaseCommand
from tqdm import tqdm

from apps.knowledge.indexing import build_index
from apps.knowledge.learning import learn_fusion
from apps.knowledge.runbooks import sync_runbooks


class Command(BaseCommand):
    help = "Sync runbooks from runbooks/ and rebuild the knowledge index (embeddings come from the cache when unchanged)."

    def handle(self, *args, **options):
        changed, removed = sync_runbooks()
        self.stdout.write(f"Runbooks: {len(changed)} changed, {len(removed)} sections removed.")
        with tqdm(desc="Embedding", unit="passage", file=self.stderr._out) as bar:
            build = build_index(progress=bar.update)
        self.stdout.write(self.style.SUCCESS(
            f"Index built: {build.documents} documents with {build.model} "
            f"in {(build.finished_at - build.started_at).total_seconds():.1f}s."))
        self.stdout.write("Learning evidence weights from resolved incidents…")
        learned = learn_fusion()
        if learned.weights is None:
            self.stdout.write(f"Too little history to learn from ({learned.examples} resolved incidents over fewer "
                              "than two categories, or under 30 usable): suggestions use the fixed weights.")
        else:
            weights = ", ".join(f"{name} {value:+.2f}" for name, value in learned.weights.items())
            self.stdout.write(self.style.SUCCESS(f"Learned from {learned.examples} resolved incidents: {weights}."))
