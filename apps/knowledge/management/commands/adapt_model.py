"""`manage.py adapt_model`: adapt the sentence space to the team's resolved incidents, adopt it only
if cross-validation says it ranks better, and rebuild the index in the adopted space."""

from django.core.management.base import BaseCommand

from apps.knowledge.adoption import adapt_and_rebuild


class Command(BaseCommand):
    help = ("Fit a map of the sentence space on the resolved incidents (adaptation.py), compare it with the stock "
            "space by k-fold evaluation, adopt it only if top-1 is higher and top-3 no lower, and rebuild the index.")

    def add_arguments(self, parser):
        parser.add_argument("--folds", type=int, default=5)

    def handle(self, *args, folds: int, **options):
        adoption, rebuilt = adapt_and_rebuild(folds=folds)
        for name in ("stock", "adapted"):
            figures = getattr(adoption, name)
            if figures:
                self.stdout.write(f"{name:<8} top-1 {figures['top1']:.3f}  top-3 {figures['top3']:.3f}  "
                                  f"MRR {figures['mrr']:.3f}  ({adoption.incidents} incidents, {folds} folds)")
        self.stdout.write(f"{adoption.reason}: {'adopted ' + adoption.space if adoption.space else 'stock space'}.")
        if rebuilt:
            self.stdout.write(self.style.SUCCESS(f"Index rebuilt in the {adoption.space or 'stock'} space."))
