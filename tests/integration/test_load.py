"""A CI-sized load run (benchmarks/load/run_load.py, which `make load` runs at full size): two server
processes sharing one Mongo, users saving, deleting and exporting across 20 tenants and 10 AC accounts.
No 5xx, no other tenant's data, never more than AC's 5 requests per sliding second at any AC account,
and nothing left running afterwards."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a load run: two server processes for ~15 s

ROOT = Path(__file__).resolve().parents[2]


def test_short_load_run_holds_every_invariant(tmp_path):
    report_path = tmp_path / "report.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "load" / "run_load.py"), "--duration", "8",
                          "--users", "10", "--json", str(report_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert report_path.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert report["failures"] == [] and run.returncode == 0, run.stdout[-3000:]
    statuses = {s for route in report["routes"].values() for s in route["statuses"]}
    assert statuses <= {"200", "404", "409"}                   # no 5xx, nothing outside the contract
    assert report["checked"]["export_pages"] >= 50 and "violations" not in report["checked"]
    assert {"GET /export/contacts", "GET /export/deals", "GET /export/accounts", "POST /auth",
            "DELETE /auth", "GET /auth"} <= set(report["routes"])
    assert 1 <= report["ac_max_in_any_1s"] <= 5 and all(a["429"] == 0 for a in report["ac_accounts"])
    assert report["leftover_processes"] == []
