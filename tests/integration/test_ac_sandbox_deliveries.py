"""The sandbox's webhook deliveries follow the published real ones (tests/fixtures/ac_webhooks/): no key that
no real delivery of that type has, the top-level `orgname` and `customer_acct_*`, deal and account custom
fields as `[fields][i][id|key|value]` with multi-value fields one level deeper, a public unsubscribe's
`list[][id]`; and each maps into a change without anything cut."""

from __future__ import annotations

import datetime as dt
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

import pytest
from acexport.live import form, mapping

from devstack.ac_sandbox import ACSandbox
from tests import ac_webhooks

# What the published deliveries carry, as key shapes (`contact[fields][N]`), by the block they are about
# (the contact events share their contact block and top-level keys, the deal events theirs; the 2024
# samples show `customer_acct_*` on every contact event, the 2017 ones predate it); plus what AC's AsyncAPI
# description documents for a public unsubscribe (`list[][id]`).
GROUPS = {"contact": {"subscribe", "update", "unsubscribe", "contact_tag_added", "subscriber_note",
                      "contact_task_add"},
          "deal": {"deal_add", "deal_update", "deal_task_add", "deal_task_complete", "deal_note_add"},
          "account": {"account_update"}}
SHAPES: dict[str, set[str]] = {}
for _sample in ac_webhooks.load().values():
    _pairs = [tuple(p) for p in _sample["form"]]
    _kind = dict(_pairs)["type"]
    _group = next((g for g, kinds in GROUPS.items() if _kind in kinds), _kind)
    SHAPES.setdefault(_group, set()).update(re.sub(r"\[\d+\]", "[N]", k) for k, _ in _pairs
                                            if not k.startswith(("task[", "note")))
SHAPES["contact"] |= {"list[][id]", "tag"}
SHAPES["deal"] |= {"updated_fields[N]"}


def shapes_allowed(kind: str) -> set[str]:
    return SHAPES[next(g for g, kinds in GROUPS.items() if kind in kinds)]


@pytest.fixture(scope="module")
def ac():
    with ACSandbox(rate_limit=None, contacts=12, deals=6, accounts=3) as sandbox:
        yield sandbox


@pytest.fixture
def posted(ac):
    """The sandbox with one webhook for every event to a local server that keeps each body."""
    ac.reset()
    got: list[list[tuple[str, str]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append(parse_qsl(body.decode(), keep_blank_values=True))
            got[-1].append(("_raw", body.decode()))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/hook"
    with ac._lock:
        ac.webhooks["1"] = {"id": "1", "url": url, "events": ["subscribe", "update", "unsubscribe",
                                                              "contact_tag_added", "deal_add", "deal_update",
                                                              "account_update"],
                            "sources": ["public", "admin", "api", "system"], "listid": "0"}
    yield got
    server.shutdown()


def delivered(ac, got, sent) -> list[tuple[str, str]]:
    ac.wait_for_deliveries()
    assert [d.status for d in sent] == [200]
    pairs = got.pop()
    raw = dict(pairs).pop("_raw")
    return [p for p in pairs if p[0] != "_raw"], raw


def mapped(raw: str) -> mapping.Change:
    return mapping.change(form.parse(raw.encode(), form.FORM), received_at=dt.datetime.now(dt.UTC))


def test_every_delivery_has_only_keys_real_ones_have_and_maps_uncut(ac, posted):
    ac.account_custom_field_data.append({"id": "999", "accountCustomFieldMetumId": 1, "accountId": 1,
                                         "customFieldId": 1, "fieldValue": ["Software", "Retail"]})
    sends = [lambda: ac.update_contact(3, firstName="Zed"), lambda: ac.add_contact("n@example.com")[1],
             lambda: ac.tag_contact(4, "vip"), lambda: ac.unsubscribe_contact(5, list_id="2"),
             lambda: ac.unsubscribe_contact(5, list_id="3", initiated_by="admin"),
             lambda: ac.update_deal(next(d["id"] for d in ac.deals if not d.get("isDisabled")), title="Renamed"),
             lambda: ac.add_deal("New", value=12345, contact_id=3)[1],
             lambda: ac.update_account(1, name="Renamed Inc")]
    for send in sends:
        pairs, raw = delivered(ac, posted, send())
        kind = dict(pairs)["type"]
        shapes = {re.sub(r"\[\d+\]", "[N]", k) for k, _ in pairs}
        assert shapes - shapes_allowed(kind) == set(), kind
        assert {"orgname", "customer_acct_name", "customer_acct_id"} <= shapes or kind == "account_update"
        assert "%5B" in raw                               # brackets encoded, as PHP's http_build_query does
        change = mapped(raw)
        assert "truncated" not in change.details


def test_deal_and_account_custom_fields_and_a_public_unsubscribe(ac, posted):
    ac.account_custom_field_data.append({"id": "999", "accountCustomFieldMetumId": 1, "accountId": 1,
                                         "customFieldId": 1, "fieldValue": ["Software", "Retail"]})
    _, raw = delivered(ac, posted, ac.update_account(1, name="Renamed Inc"))
    assert "account%5Bfields%5D%5B" in raw and "%5Bvalue%5D%5B1%5D=Retail" in raw     # five levels
    account = mapped(raw)
    assert account.record["name"] == "Renamed Inc" and ["Software", "Retail"] in account.record["customFields"].values()
    assert account.details["updated_fields"] == ["name"]
    enabled = {d["id"] for d in ac.deals if not d.get("isDisabled")}
    deal_id = next(str(d["dealId"]) for d in ac.deal_custom_field_data if str(d["dealId"]) in enabled)
    _, raw = delivered(ac, posted, ac.update_deal(deal_id, title="With fields"))
    deal = mapped(raw)
    labels = {m["fieldLabel"] for m in ac.deal_custom_field_meta}
    assert deal.record["customFields"] and set(deal.record["customFields"]) <= labels
    pairs, raw = delivered(ac, posted, ac.unsubscribe_contact(5, list_id="2"))
    assert ("list[][id]", "2") in pairs and "list" not in dict(pairs)
    assert mapped(raw).details["list_id"] == "2"
