"""`manage.py audit_verify`: recompute every audit chain (one per team, and the platform chain),
check them against exported signed heads, export a new head; exit 1 naming each broken chain with
its first broken event, or each failed head."""

import json
import sys

from django.core.management.base import BaseCommand, CommandError

from apps.audit.heads import check_heads, signed_head
from apps.audit.log import verify_chain


class Command(BaseCommand):
    help = ("Verify the audit log's HMAC chains (one per team, one for the platform) and name each chain's "
            "first broken event, if any; optionally check it "
            "against signed heads exported earlier, and export the current head.")

    def add_arguments(self, parser):
        parser.add_argument(
            "--check-heads", metavar="FILE",
            help="JSON lines of heads exported earlier ('-': read them from standard input); fails when the "
                 "database no longer holds an event a head names, or a head's signature does not match.")
        parser.add_argument(
            "--export-head", metavar="FILE",
            help="after verifying, append the signed head of the chain to FILE as one JSON line ('-': print it "
                 "for an external store); keep FILE where whoever can write the database cannot.")

    def handle(self, *args, check_heads: str | None = None, export_head: str | None = None, **options):
        verdict = verify_chain()
        if not verdict.ok:
            raise CommandError(
                f"Audit chain broken in {len(verdict.broken)} of {len(verdict.chains)} chains:\n- "
                + "\n- ".join(f"{chain.title}: {chain.reason}" for chain in verdict.broken)
                + f"\n{verdict.events_checked} events before the breaks verified."
            )
        # With the head printed, standard output carries just that line for the external store.
        report = self.stderr if export_head == "-" else self.stdout
        report.write(self.style.SUCCESS(
            f"Audit chain intact: {verdict.events_checked} events verified ({verdict.keyed} signed with "
            f"HMAC-SHA256, {verdict.unkeyed} written before keying, as plain SHA-256) in {len(verdict.chains)} "
            f"chain(s): one per team, one for the platform."))
        if check_heads:
            self._check_heads(check_heads, report)
        if export_head:
            self._export_head(export_head, json.dumps(signed_head(verdict), sort_keys=True))

    def _check_heads(self, source: str, report) -> None:
        try:
            if source == "-":
                lines = sys.stdin.readlines()
            else:
                with open(source, encoding="utf-8") as heads_file:
                    lines = heads_file.readlines()
        except OSError as exc:
            raise CommandError(f"Cannot read the heads file {source}: {exc.strerror}. Give the file that "
                               "--export-head wrote.") from None
        heads = check_heads(lines)
        if heads.problems:
            raise CommandError(f"{len(heads.problems)} problem(s) with the exported heads:\n- "
                               + "\n- ".join(heads.problems))
        if not heads.checked:
            raise CommandError(f"{source} holds no heads: export one with --export-head first.")
        report.write(self.style.SUCCESS(f"The chain matches all {heads.checked} exported heads."))

    def _export_head(self, target: str, line: str) -> None:
        if target == "-":
            self.stdout.write(line)
            return
        try:
            with open(target, "a", encoding="utf-8") as heads:
                heads.write(line + "\n")
        except OSError as exc:
            raise CommandError(f"Cannot append the head to {target}: {exc.strerror}.") from None
        self.stdout.write(f"Signed head appended to {target}.")
