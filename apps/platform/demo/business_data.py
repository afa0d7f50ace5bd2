"""The demo's business data: one SQLite database standing in for the warehouse, the ledger, the
HRIS and the other databases the demo workflows query, and the bank statements under the data
folder. Rebuilt on every `load_demo`, dated relative to today, so "yesterday" always has data.

One payslip of the current pay period is a data-entry error (net pay above the check's limit):
`payroll-run` for that period fails its check on purpose and pauses at a checkpoint.
"""

import csv
import os
import random
import sqlite3
from datetime import date, timedelta
from pathlib import Path

DAYS = 35
OUTLIER_EMPLOYEE, OUTLIER_NET_PAY = "E-1042", 61_250.0

SCHEMA = """
create table customers (customer_id integer primary key, name text, segment text);
create table orders (order_id integer primary key, customer_id integer, amount real, updated_at text);
create table staging_orders (order_id integer primary key, customer_id integer, amount real, load_date text);
create table published_days (day text primary key, published_at text);
create table usage (account_id text, units integer, month text);
create table usage_monthly (account_id text, units integer, month text, primary key (account_id, month));
create table entries (entry_id integer primary key, amount real, reference text, booked_on text);
create table business_days (day text primary key, closed integer default 0);
create table timesheets (employee_id text, hours real, overtime real, period text);
create table benefits (employee_id text, plan text, deduction real, active integer);
create table payslips (employee_id text, net_pay real, period text, primary key (employee_id, period));
create table payroll_enrolment (employee_id text primary key, start_date text);
create table ml_features (customer_id integer, tenure integer, spend real, model text);
"""


def months_back(today: date, count: int) -> list[str]:
    """This month and the `count - 1` before it, as YYYY-MM."""
    year, month, periods = today.year, today.month, []
    for _ in range(count):
        periods.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return periods


def _rows(today: date, rng: random.Random) -> dict[str, list[tuple]]:
    days = [today - timedelta(days=n) for n in range(1, DAYS + 1)]
    customers = [(n, f"Customer {n}", rng.choice(["smb", "mid-market", "enterprise"])) for n in range(1, 401)]
    orders, staging, entries = [], [], []
    order_id = entry_id = 0
    for day in days:
        for _ in range(rng.randint(140, 190)):
            order_id += 1
            amount = round(rng.lognormvariate(4, 0.8), 2)
            orders.append((order_id, rng.randint(1, 400), amount, f"{day.isoformat()}T{rng.randint(0, 23):02d}:00:00"))
            staging.append((order_id, orders[-1][1], amount, day.isoformat()))
        for _ in range(rng.randint(60, 90)):
            entry_id += 1
            entries.append((entry_id, round(rng.uniform(5, 5000), 2), f"INV-{entry_id:06d}", day.isoformat()))
    employees = [f"E-{1000 + n}" for n in range(60)]
    periods = months_back(today, 4)
    usage, monthly, timesheets, payslips = [], [], [], []
    for period in periods:
        for account in range(1, 61):
            units = rng.randint(50, 5000)
            usage.extend([(f"A-{account:03d}", units // 2, period), (f"A-{account:03d}", units - units // 2, period)])
            monthly.append((f"A-{account:03d}", units, period))
        for employee in employees:
            timesheets.append((employee, rng.choice([152, 160, 168]), rng.choice([0, 0, 4, 8]), period))
            payslips.append((employee, round(rng.uniform(2400, 7800), 2), period))
    current = periods[0]
    payslips = [(e, OUTLIER_NET_PAY if (e, p) == (OUTLIER_EMPLOYEE, current) else pay, p) for e, pay, p in payslips]
    return {
        "customers": customers, "orders": orders, "staging_orders": staging, "entries": entries,
        "business_days": [(day.isoformat(), 0) for day in days],
        "usage": usage, "usage_monthly": monthly, "timesheets": timesheets, "payslips": payslips,
        "benefits": [(e, rng.choice(["basic", "family", "plus"]), round(rng.uniform(40, 320), 2), 1)
                     for e in employees],
        "ml_features": [(n, rng.randint(1, 96), round(rng.uniform(10, 900), 2), model)
                        for model in ("churn", "upsell") for n in range(1, 1201)],
    }


def build_database(path: Path, today: date) -> None:
    """Write the demo database to `path` (replacing it in one move, so a worker never sees half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    building = path.with_suffix(".building")
    building.unlink(missing_ok=True)
    db = sqlite3.connect(building)
    try:
        db.executescript(SCHEMA)
        for table, rows in _rows(today, random.Random(7)).items():
            db.executemany(f"insert into {table} values ({', '.join('?' * len(rows[0]))})", rows)
        db.commit()
    finally:
        db.close()
    os.replace(building, path)


def write_bank_statements(folder: Path, today: date) -> None:
    """One CSV statement per day for the last DAYS days (what end-of-day-reconciliation checks)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(11)
    for n in range(1, DAYS + 1):
        day = today - timedelta(days=n)
        with (folder / f"statement-{day.isoformat()}.csv").open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["transaction_id", "amount", "counterparty"])
            for row in range(rng.randint(40, 70)):
                writer.writerow([f"T{day:%Y%m%d}-{row:04d}", round(rng.uniform(5, 5000), 2), f"Customer {row + 1}"])
