"""Deals and accounts jobs with several offset pages in flight (the real-latency round), through the whole local stack
(HTTP to the AC stand-in, the FIFO queue, S3 multipart, checkpoints in Mongo): slow answers overlap instead of
queueing, the file is the one a walk with one page in flight writes, every record is in it once across
hand-ons, a crash and edits made while the job runs, a deals cursor of an older release resumes, and a
steady walk asks AC for no page it does not use."""

import threading
import time

import pytest
from acexport.ac.client import ACClient
from acexport.jobs import spec as job_spec
from acexport.jobs.walk import Walk

from devstack.ac_sandbox import most_in_any_window
from tests.integration.jobs_kit import crash_on_checkpoint, ids


def pages(count: int) -> int:
    """Offset pages of a walk over `count` records: 100, then 99 new ones a page (one record of overlap)."""
    return max(1, -(-(count - 1) // 99))


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
@pytest.mark.parametrize("resource", ["deals", "accounts"])
def test_slow_answers_keep_several_offset_pages_in_flight_and_the_file_is_the_same(kit, resource):
    kit.api.env(EXPORT_PAGES_IN_FLIGHT="4", AC_RATE_BUDGET="shared", AC_RATE_LIMIT_PER_SECOND="5")
    kit.sandbox.rate_limit = 5
    kit.sandbox.generate(**{resource: 500})
    kit.sandbox.answer_time(0.4, 0.0, 0.0)
    _, records = kit.run(resource, timeout=60)
    assert records == kit.expected(resource)
    answered = [r for r in kit.sandbox.requests if r.path == f"/{resource}" and r.status == 200]
    # one page in flight: each request waits for the answer before it (0.4 s), so no two arrive within 0.3 s;
    # here pages overlap (how many depends on the budget's slots, which the first page's enrichment shares)
    assert most_in_any_window([r.at for r in answered], 0.3) >= 2
    offsets = sorted(int(dict(r.query)["offset"]) for r in answered)
    assert offsets == [0, *range(99, 499, 99)] and len(offsets) == pages(500)      # none wasted, none twice
    kit.sandbox.answer_time(0.0, 0.0, 0.0)
    kit.api.lift_rate_limit()
    kit.api.env(EXPORT_PAGES_IN_FLIGHT="1")
    _, one_at_a_time = kit.run(resource)
    assert one_at_a_time == records


@pytest.mark.slow
def test_an_offset_job_across_hand_ons_and_a_crash_writes_each_deal_once(kit, monkeypatch):
    kit.api.env(EXPORT_PAGES_IN_FLIGHT="4", EXPORT_STEP_SECONDS="0.15")    # a few pages a step, then hand on
    kit.sandbox.generate(deals=2500)
    kit.sandbox.answer_time(0.03, 0.0, 0.0)
    checkpoints = crash_on_checkpoint(monkeypatch, 3)     # pages were written to the file; no checkpoint
    job, records = kit.run("deals", timeout=60)
    assert records == kit.expected("deals")
    assert kit.doc(job["id"])["last_error"] == "RuntimeError"
    mid = [c for c in checkpoints if c.get("offset")]
    assert len(mid) >= 4 and all(set(c) == {"v", "offset", "last_id", "last_key", "order", "pages"} for c in mid)
    asked = sorted(r.at for r in kit.sandbox.requests if r.path == "/deals")
    assert most_in_any_window(asked, 0.02) >= 2                                  # pages ahead within steps


@pytest.mark.slow
def test_accounts_deleted_and_added_while_pages_are_in_flight_are_written_once(kit):
    kit.api.env(EXPORT_PAGES_IN_FLIGHT="4")
    sandbox = kit.sandbox
    sandbox.generate(accounts=1200)
    sandbox.answer_time(0.1, 0.0, 0.0)
    before = ids(kit.expected("accounts"))

    def edit():
        while sandbox.count("/accounts") < 3:         # the first page (1..100) is written: pages ahead asked
            time.sleep(0.005)
        del sandbox.accounts[10:40]                   # written already: every later page slides back 30
        last = sandbox.accounts[-1]
        sandbox.accounts.extend([{**last, "id": str(5000 + n), "name": f"Late {n}"} for n in range(3)])

    editor = threading.Thread(target=edit)
    editor.start()
    _, records = kit.run("accounts", timeout=60)
    editor.join(timeout=5)
    assert ids(records) == [*before, "5000", "5001", "5002"]


@pytest.mark.slow
def test_a_deals_cursor_of_an_older_release_resumes_with_pages_ahead_and_no_request_wasted(api):
    api.lift_rate_limit()
    api.sandbox.generate(deals=800)
    api.sandbox.answer_time(0.3, 0.0, 0.0)             # 5 req/s x 0.3 s x 1.5: three pages in flight
    in_id_order = sorted(api.sandbox.deals, key=lambda d: int(d["id"]))
    cursor = {"offset": 300, "last_id": in_id_order[299]["id"], "pages": 3}     # no "order": the id order
    client = ACClient(api.sandbox.base_url, "sandbox-key", deadline=time.monotonic() + 30)
    api.sandbox.requests.clear()
    seen = []
    with Walk(client, job_spec.parse("deals", {}), cursor, deadline=time.monotonic() + 30, patience=0,
              in_flight=4) as walk:
        while True:
            page = walk.next_page()
            seen += [r["id"] for r in page.records]
            if page.last:
                break
    assert seen == [d["id"] for d in in_id_order[300:]]
    asked = [dict(r.query) for r in api.sandbox.requests if r.path == "/deals"]
    assert sorted(int(q["offset"]) for q in asked) == list(range(299, 800, 99))   # from the record before it
    assert all(q.get("orders[id]") == "ASC" and "orders[cdate]" not in q for q in asked)
    assert walk.wasted == 0 and page.cursor["pages"] == 3 + len(asked) and page.cursor["order"] == "id"
    assert most_in_any_window(sorted(r.at for r in api.sandbox.requests if r.path == "/deals"), 0.2) >= 2
