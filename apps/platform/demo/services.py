"""The demo's HTTP services, served by Flowdeck itself under /demo/services/: small stand-ins for
the CRM, billing, payment provider, directory, payroll, bank, warehouse jobs and ML APIs the demo
workflows call through the `demo-services` connection.

Only a caller holding that connection's secret gets an answer (http.request sends it as a bearer
token); without the demo loaded, every path is a 404. The answers are canned but shaped like the
real thing, so templates such as `steps.evaluate_candidate.output.json.auc` have something to read.
"""

import hmac
import json
import re
from datetime import date

from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt

CONNECTION_NAME = "demo-services"
CANDIDATE_AUC, LIVE_AUC = 0.842, 0.851  # the candidate is not better: `promote` is skipped


def _body(request) -> dict:
    try:
        return json.loads(request.body or b"{}")
    except ValueError:
        return {}


def _contracts(request, match, body):
    return {"contracts": [{"account_id": f"A-{n:03d}", "plan": "standard" if n % 3 else "enterprise",
                           "unit_price": 0.12 if n % 3 else 0.09} for n in range(1, 61)]}


def _drafts(request, match, body):
    return {"period": body.get("period"), "drafts": 58, "skipped_below_minimum": 2, "total": 184_220.5}


def _settlements(request, match, body):
    return {"date": request.GET.get("date"), "settlements": 64, "gross": 41_802.17, "fees": 512.3}


def _match(request, match, body):
    return {"business_date": body.get("business_date"), "matched": int(body.get("ledger_rows") or 0), "unmatched": 0}


def _directory_user(request, match, body):
    return {"employee_id": body.get("employee_id"), "account": body.get("email"), "status": "created"}


def _order(request, match, body):
    return {"order_id": f"IT-{abs(hash(body.get('employee_id'))) % 100000:05d}", "deliver_by": body.get("deliver_by")}


def _payslips(request, match, body):
    return {"period": body.get("period"), "computed": int(body.get("timesheet_rows") or 0)}


def _batch(request, match, body):
    return {"batch_id": f"B-{(body.get('period') or '').replace('-', '')}-01", "status": "accepted"}


def _staging(request, match, body):
    return {"day": body.get("day"), "loaded": int(body.get("orders") or 0), "job": "load-staging-orders"}


def _features(request, match, body):
    return {"model": body.get("model"), "rows": 1200, "built_on": date.today().isoformat()}


def _train(request, match, body):
    return {"model_id": f"{body.get('model')}-{date.today():%Y%m%d}", "epochs": 12}


def _ok(request, match, body):
    return {"status": "ok"}


ROUTES = [
    ("GET", r"crm/contracts", _contracts),
    ("POST", r"billing/invoices/drafts", _drafts),
    ("DELETE", r"billing/invoices/drafts/[\w-]+", _ok),
    ("POST", r"billing/invoices/send", lambda r, m, b: {"period": b.get("period"), "sent": 58}),
    ("GET", r"psp/settlements", _settlements),
    ("POST", r"reconciliation/match", _match),
    ("POST", r"directory/users", _directory_user),
    ("DELETE", r"directory/users/[\w-]+", _ok),
    ("POST", r"it/orders", _order),
    ("POST", r"payroll/payslips/compute", _payslips),
    ("POST", r"bank/batches", _batch),
    ("POST", r"bank/batches/cancel", _ok),
    ("POST", r"warehouse-jobs/reset-staging-orders", _ok),
    ("POST", r"warehouse-jobs/load-staging-orders", _staging),
    ("DELETE", r"warehouse-jobs/staging/orders/[\w-]+", _ok),
    ("POST", r"ml/features/build", _features),
    ("POST", r"ml/train", _train),
    ("POST", r"ml/evaluate", lambda r, m, b: {"candidate": b.get("candidate"), "auc": CANDIDATE_AUC}),
    ("GET", r"ml/models/[\w-]+/live/metrics", lambda r, m, b: {"auc": LIVE_AUC}),
    ("POST", r"ml/models/[\w-]+/(promote|rollback)", _ok),
]


def _authorized(request) -> bool:
    from apps.catalog.models import Connection, ConnectionKind

    connection = Connection.objects.filter(name=CONNECTION_NAME, kind=ConnectionKind.HTTP).first()
    secret = connection.reveal_secret() if connection else ""
    given = request.headers.get("Authorization", "")
    return bool(secret) and hmac.compare_digest(given.encode(), f"Bearer {secret}".encode())


@csrf_exempt
def demo_service(request, path: str):
    if not _authorized(request):
        raise Http404("No demo services here.")
    for method, pattern, answer in ROUTES:
        match = re.fullmatch(pattern, path)
        if match and request.method == method:
            return JsonResponse(answer(request, match, _body(request)))
    return JsonResponse({"error": f"the demo has no {request.method} /{path}"}, status=404)
