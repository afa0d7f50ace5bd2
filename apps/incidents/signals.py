"""Signals the incidents app sends, after the transaction that caused them has committed."""

from django.dispatch import Signal

# incident_resolved(sender, incident): a resolved incident is new knowledge for the assistant.
incident_resolved = Signal()
# failure_recorded(sender, incident): a failure opened or recurred on it (the assistant ranks it).
failure_recorded = Signal()
# incidents_imported(sender, incident_ids): a batch of history arrived.
incidents_imported = Signal()
# category_saved(sender, category): its description changed, so the index must re-embed it.
category_saved = Signal()
