"""A stand-in for ActiveCampaign's v3 API, served over real HTTP on loopback.

It serves as the demo account of the local dev server and as the AC the tests drive. It behaves as
``docs/ac-behaviour.md`` and the public evidence of the complete-records round (docs/query.md, "AC behaviours
relied on") describe: ``limit``/``offset`` paging (default 20, also on ``/fields`` as observed in practice
and ``/lists`` as documented; clamped to 100), ``meta.total`` a string everywhere except ``/deals`` (an int),
unknown query parameters silently ignored, a bad or missing ``Api-Token`` answered 403
``{"message": "Forbidden"}`` *without* a Content-Type header, 5 requests per sliding second per account (all
keys are one account) answered 429 + ``Retry-After: <retry_after>`` (1 unless set; AC's documented example
is 30) beyond that, ``RateLimit-Limit``/``RateLimit-Remaining`` headers on authorised responses, an HTML 404
for unknown paths and a JSON 404 for AC features it does not model (``NOT_MODELLED``); single records
(``GET /contacts/7`` -> ``{"contact": {...}}``, every collection of ``SINGLE_READS``) with AC's JSON 404
``{"message": "No Result found for Subscriber with id 7"}`` for a missing id.
Records: contacts with ``accountContacts`` and ``links``, null where AC sends null;
``include=fieldValues,contactTags,contactLists`` on contacts and ``include=dealCustomFieldData`` on deals
(top-level collections plus id lists on records); ``/tags``, ``/lists``, ``/users``, ``/accountContacts``,
``/dealCustomFieldMeta|Data``, ``/accountCustomFieldMeta|Data``; multi-select fields (``||a||b||``: a checkbox
and a list box), dropdowns, a radio button, a date and a text field;
many disabled deal stubs ``{id, title, isDisabled: 1}``; ``count_deals=true`` counting accountContacts and
deals; ``listid``, ``tagid``, ``formid``, ``segmentid``, ``ids[]``, deal ``filters[search]`` +
``filters[search_field]``, whole-dollar value bounds and exclusive ``filters[*_before]`` really filtering;
tags' ``filters[search][<op>]`` and ``orders[search]``, lists' ``filters[name|id|channel|userid]`` and
``orders[...]``; choice fields with ``fieldOptions`` and every field with a ``fieldRels`` relation.
docs/ac-behaviour.md ("What the stand-in answers") has the evidence for each.
``deny(path, api_key=None)`` makes AC answer
the permission 403 (``{"errors":[{"status":403,"title":"Forbidden","detail":"You do not have permission to
view deals."}]}``, text/plain) for that path, for one key or all; ``reset()`` lifts it.
``ignore_include("/deals", "dealCustomFieldData")`` (or ``ignored_includes=`` / ``--ignore-include
/deals:dealCustomFieldData``) answers as an AC that does not know that sideload would: no top-level collection,
no ids on the records.

Usage::

    sandbox = ACSandbox(rate_limit=None, contacts=50).start()   # port 0 -> a free port
    requests.get(f"{sandbox.base_url}/api/3/contacts", headers={"Api-Token": "sandbox-key"})
    sandbox.count("/contacts")                                 # AC calls made so far to that path
    sandbox.stop()

    python -m devstack.ac_sandbox --port 8010 --contacts 500  # foreground, Ctrl-C to stop

Fault injection
---------------
``inject(status=None, *, times=1, path=None, retry_after=None, delay=0.0, body=None,
content_type="application/json", location=None)`` queues a fault for the next ``times`` requests, or only
for requests whose path equals ``path`` (given after the API prefix, e.g. ``"/contacts"``; the full
``"/api/3/contacts"`` works too). Faults are consumed in FIFO order: a request takes the first queued fault
that matches it. They apply before auth and rate limiting (they simulate the network or AC itself failing):

* ``status=503`` (any code): answered with that status and ``{"message": "<reason>"}``, or ``body`` if
  given; ``retry_after`` adds a ``Retry-After`` header; ``content_type=None`` sends no Content-Type.
* ``status=302, location="https://www.activecampaign.com/login/"``: a redirect with that Location and an
  HTML login-page body (the "wrong account host" case; send with ``allow_redirects=False``).
* ``status=None, delay=12``: a slow but otherwise normal response (simulates a hang past the client's read
  timeout). ``delay`` also works together with a status.
* ``status=None, body=b'{"contacts": [{"id"'``: the normal response (status and headers) with its body
  replaced, e.g. by truncated JSON or an HTML page (``content_type="text/html"``).

Answer time
-----------
Real AC answers a full page with sideloads in hundreds of milliseconds (FluentCRM's importer saw "about 1
second response times for listing contacts", docs/ac-behaviour.md); the
stand-in answers in about 10 ms. ``answer_time(fixed=0.4, per_record=0.0, jitter=0.2)`` (or
``ACSandbox(answer_time=(0.4, 0.0, 0.2))``, ``--answer-ms/--per-record-ms/--jitter``) makes every
authorised answer take ``(fixed + per_record x records in the page) x (1 +/- jitter)`` seconds (uniform),
spent after the request was counted against the rate limit (AC counts a request when it arrives).

Every request, faulted or not, is appended to ``requests`` as a :class:`RecordedRequest` (``path`` after the
API prefix, ``at`` = ``time.monotonic()`` on arrival, ``status`` = final status, 0 while in flight);
``connections`` counts the TCP connections accepted (HTTP/1.1 keep-alive, as AC's API).
``reset()`` clears faults, the request log and the rate-limit window, restores the original keys, answer time and
data sizes, and regenerates the dataset.
The data (``contacts``, ``fields``, ``field_options``, ``field_rels``, ``field_values``, ``deals``, ``deal_groups``,
``deal_stages``, ``accounts``, ``account_contacts``, ``tags``, ``lists``, ``contact_tags``, ``contact_lists``,
``users``, ``deal_custom_field_meta``, ``deal_custom_field_data``, ``account_custom_field_meta``,
``account_custom_field_data``) are plain lists of AC-shaped dicts that tests may edit; ``generate()`` rebuilds them
deterministically from ``seed``.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import json
import random
import threading
import time
import traceback
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

__all__ = ["ACSandbox", "RecordedRequest", "deal_created", "most_in_any_window"]
T = TypeVar("T")

JSON = "application/json"
TZ = timezone(timedelta(hours=-5))
EPOCH = datetime(2023, 1, 2, 9, 0, tzinfo=TZ)
NOW = datetime(2025, 6, 30, 17, 0, tzinfo=TZ)
LINK_HOST = "https://sandbox.api-us1.com"
NOT_FOUND = b"<html><body>Sorry, this page could not be found</body></html>"
LOGIN_PAGE = '<html><head><title>Log in</title></head><body><a href="{0}">Log in</a></body></html>'

FIRST = ["James", "Mary", "Robert", "Patricia", "Michael", "Jennifer", "William", "Linda", "David", "Sofia",
         "Richard", "Barbara", "Joseph", "Susan", "Thomas", "Jessica", "Charles", "Sarah", "Daniel", "Karen",
         "Matthew", "Nancy", "Anthony", "Lisa", "Liam", "Olivia", "Noah", "Emma", "Lucas", "Mia", "Ethan",
         "Chloé", "Mateo", "Aisha", "Hiroshi", "Priya", "Zoe", "Björn"]
LAST = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Wilson",
        "Martinez", "Anderson", "Taylor", "Thomas", "Moore", "Jackson", "Martin", "Lee", "Perez", "White",
        "Harris", "Clark", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott",
        "Torres", "Hill", "Green", "Adams", "Nelson", "O'Brien", "Müller", "Kowalski", "Okafor", "Tanaka"]
JOHNS = ["Smith", "Doe", "Carter", "Nguyen"]
DOMAINS = ["example.com", "example.org", "mail.example.net", "corp.example", "inbox.test"]
COMPANIES = ["Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay", "Wonka", "Cyberdyne",
             "Soylent", "Tyrell", "Oscorp", "Aperture", "Pied Piper", "Dunder Mifflin", "Sterling Cooper",
             "Bluth", "Nakatomi", "Virtucon", "Gringotts", "Massive Dynamic", "Monarch", "Prestige Worldwide",
             "Los Pollos", "Zürich Analytics", "Café Olé"]
SUFFIXES = ["Inc", "LLC", "Ltd", "Group", "Holdings", "Labs"]
PRODUCTS = ["Annual Plan", "Pilot", "Enterprise Upgrade", "Onboarding Package", "Renewal", "Add-on Seats",
            "Consulting", "Training"]
FIELDS = [("Company Size", "COMPANY_SIZE", "dropdown", ["1-10", "11-50", "51-200", "201-1000", "1000+"]),
          ("Industry", "INDUSTRY", "dropdown", ["Software", "Retail", "Healthcare", "Finance", "Education"]),
          ("Birthday", "BIRTHDAY", "date", []),
          ("Lead Source", "LEAD_SOURCE", "text", ["Website", "Referral", "Trade Show", "Webinar", "Partner"]),
          # multi-select: AC stores "||Option 1||Option 3||" (AC reference, create a field value)
          ("Interests", "INTERESTS", "checkbox", ["Email", "Events", "Product News", "Offers"])]
# Fields added after the first data set, their values drawn from a random stream of their own so the values
# above stay as they were: a multi-select list box (stored "||a||b||" like a checkbox) and a radio button.
LATER_FIELDS = [("Preferred Channels", "PREFERRED_CHANNELS", "listbox", ["Email", "Phone", "SMS", "Post"]),
                ("Newsletter Format", "NEWSLETTER_FORMAT", "radio", ["HTML", "Plain text"])]
ALL_FIELDS = FIELDS + LATER_FIELDS
# /contacts filters by automations, which this stand-in does not model (AC reference, list all contacts:
# seriesid = an automation, waitid = one of its wait steps): any id > 0 matches no contact here.
UNMODELLED_MEMBERSHIPS = ("seriesid", "waitid")
# Segments (`/contacts?segmentid=`): AC builds them from conditions; here segment 1 holds the contacts tagged
# "Customer" (tag 1), segment 2 those tagged "VIP" (tag 3); any other segment is empty.
SEGMENT_TAGS = {1: "1", 2: "3"}
CHOICE_FIELDS = ("dropdown", "listbox", "radio", "checkbox")   # the types whose values are options
TAGS = ["Customer", "Lead", "VIP", "Newsletter", "Webinar 2025", "Trade Show", "Churn Risk", "Partner",
        "Beta Tester", "Café Owners"]
LISTS = ["Master Contact List", "Monthly Newsletter", "Product Updates", "Events", "Partners"]
USERS = [("demo", "Demo", "User"), ("alex", "Alex", "Rivera"), ("sam", "Sam", "Okafor")]
DEAL_FIELDS = [("Contract Length", "dropdown", ["12 months", "24 months", "36 months"]),
               ("Competitor", "text", ["Globex", "Initech", "None"]),
               ("Seats", "number", []), ("Expected Close", "date", [])]
ACCOUNT_FIELDS = [("Industry", "dropdown", ["Software", "Retail", "Healthcare", "Finance"]),
                  ("Employees", "number", []), ("Region", "text", ["EMEA", "AMER", "APAC"])]
TAG_LINKS = ["contactGoalTags", "templateTags"]
# filters[search][<op>] on /tags, ActiveCampaign's own MCP server's TagSearchOperator [AC-MCP]; names compare
# without case (AC's collations; how AC compares is not documented)
TAG_SEARCH: dict[str, Callable[[str, str], bool]] = {
    "eq": lambda v, x: v == x, "neq": lambda v, x: v != x, "lt": lambda v, x: v < x, "lte": lambda v, x: v <= x,
    "gt": lambda v, x: v > x, "gte": lambda v, x: v >= x, "contains": lambda v, x: x in v,
    "starts_with": lambda v, x: v.startswith(x)}
# filters[userid] (one) or filters[userid[]] (several) on /lists [AC-MCP]; requests sends a list as repeats
LIST_USER_FILTERS = ("filters[userid]", "filters[userid[]]", "filters[userid][]")
LIST_LINKS = ["contactGoalLists", "user", "addressLists"]
USER_LINKS = ["lists", "userGroup", "dealGroupTotals", "dealGroupUsers", "configs"]
PIPELINES = [("Sales Pipeline", ["To Contact", "In Contact", "Follow Up", "Closing"]),
             ("Partnerships", ["Qualification", "Negotiation", "Signed"])]
CONTACT_LINKS = ["bounceLogs", "contactAutomations", "contactData", "contactGoals", "contactLists",
                 "contactLogs", "contactTags", "contactDeals", "deals", "fieldValues", "geoIps", "notes",
                 "organization", "plusAppend", "trackingLogs", "scoreValues", "accountContacts",
                 "automationEntryCounts"]
DEAL_LINKS = ["dealActivities", "contact", "contactDeals", "group", "nextTask", "notes", "account",
              "customerAccount", "organization", "owner", "scoreValues", "stage", "tasks",
              "dealCustomFieldData"]


def most_in_any_window(times: list[float], window: float = 1.0) -> int:
    """How AC would count a rate: the most events inside any half-open window [t, t + window) of the sorted times."""
    times, best, j = sorted(times), 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: list[tuple[str, str]]
    api_key: str | None
    status: int
    at: float


@dataclass
class _Fault:
    status: int | None
    times: int
    path: str | None
    retry_after: float | None
    delay: float
    body: bytes | None
    content_type: str | None
    location: str | None


# ---------------------------------------------------------------- helpers

def _int(value, default: int) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return default


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _iso(dt: datetime) -> str:
    return dt.isoformat(timespec="seconds")


def _stamp(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%d %H:%M:%S")


def _between(rng: random.Random, start: datetime, end: datetime) -> datetime:
    return start + timedelta(seconds=rng.randint(0, max(0, int((end - start).total_seconds()))))


def _ts(value) -> float:
    """Sort key for an AC date/time string (missing or zero dates sort first)."""
    try:
        dt = datetime.fromisoformat(str(value or "").replace(" ", "T"))
    except ValueError:
        return 0.0
    return (dt if dt.tzinfo else dt.replace(tzinfo=TZ)).timestamp()


def _day(value: str | None) -> str | None:
    """The YYYY-MM-DD of a date filter value (a date or an ISO timestamp), None when unusable."""
    try:
        return date.fromisoformat((value or "").strip()[:10]).isoformat()
    except ValueError:
        return None


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in ascii_text.lower() if ch.isalnum())


def _page(q: dict[str, str], default_limit: int = 20) -> tuple[int, int]:
    limit = _int(q.get("limit"), default_limit)
    limit = default_limit if limit < 1 else min(limit, 100)
    return limit, max(0, _int(q.get("offset"), 0))


def _orders(ql: list[tuple[str, str]], allowed) -> list[tuple[str, bool]]:
    """``orders[field]=ASC|DESC`` pairs in query-string order (unknown fields ignored)."""
    found: dict[str, bool] = {}
    for key, value in ql:
        if key.startswith("orders[") and key.endswith("]") and key[7:-1] in allowed:
            found[key[7:-1]] = value.strip().upper() == "DESC"
    return list(found.items())


def _sorted(items: list[dict], orders: list[tuple[str, bool]], keys, *, by_id: bool = False) -> list[dict]:
    """`items` in AC's order: by id, then by each `orders[...]` (`by_id`: already in id order)."""
    if not by_id:
        items = sorted(items, key=lambda r: _int(r.get("id"), 0))
    if orders == [("id", False)]:
        return items
    for name, desc in reversed(orders):  # stable sorts, least significant first
        items.sort(key=keys[name], reverse=desc)
    return items


def _dated(items: list[dict], q: dict[str, str], created: str, updated: str) -> list[dict]:
    for name, key in (("created", created), ("updated", updated)):
        for side in ("after", "before"):
            day = _day(q.get(f"filters[{name}_{side}]"))
            if day is not None:
                # AC reference (list all deals): *_after "greater than or equal to", *_before "less than"
                items = [r for r in items if (d := str(r.get(key) or "")[:10])
                         and (d >= day if side == "after" else d < day)]
    return items


def _by_id(contacts: list[dict]) -> tuple[list[int], list[dict]]:
    """Contacts in id order, and their ids (for bisecting `id_greater` / `id_less`)."""
    rows = sorted(contacts, key=lambda c: _int(c.get("id"), 0))
    return [_int(c.get("id"), 0) for c in rows], rows


def _by_contact(items: list[dict]) -> dict[str, list[dict]]:
    """A contact's items (field values, tag or list memberships), in the list's order."""
    of: dict[str, list[dict]] = {}
    for item in items:
        of.setdefault(item.get("contact"), []).append(item)
    return of


def _by_key(items: list[dict]) -> dict[str, dict]:
    return {item.get("id"): item for item in items}


def _deals_by_id(deals: list[dict]) -> list[dict]:
    """Deals in AC's default order (no `orders[...]`, or only ones it ignores): by id."""
    return sorted(deals, key=lambda d: _int(d.get("id"), 0))


def deal_created(deal: dict) -> float:
    """When a deal was created, as AC's `orders[cdate]` sorts it: its `cdate`. A disabled stub (a deal in a
    pipeline the key's user may not see) carries no cdate, but AC has one and sorts by it; the stand-in gives
    each stub a fixed one, derived from its id, in the later half of the data's span, so the first page in
    creation order (what the README's deals example shows) is real deals, with stubs further on."""
    if deal.get("cdate") or "isDisabled" not in deal or "group" in deal:
        return _ts(deal.get("cdate"))
    share = int(_md5(str(deal.get("id")))[:8], 16) / 0x100000000
    return (EPOCH + (NOW - EPOCH) * (0.5 + share / 2)).timestamp()


def _deals_by_cdate(deals: list[dict]) -> list[dict]:
    """Deals in `orders[cdate]=ASC`: creation date (`deal_created`), ties by id, as `_sorted` would."""
    return sorted(_deals_by_id(deals), key=deal_created)


def _currencies(deals: list[dict]) -> dict[str, dict]:
    """meta.currencies of /deals: how many deals and how many cents per currency."""
    currencies: dict[str, dict] = {}
    for d in deals:
        if d.get("value") is not None:
            cur = currencies.setdefault(str(d.get("currency") or "usd").upper(), {"total": 0, "value": 0})
            cur["total"] += 1
            cur["value"] += _int(d["value"], 0)
    return currencies


def _data_by_deal(items: list[dict]) -> dict[int, list[tuple[int, dict]]]:
    """Deal custom field values by dealId, with their places in the list (to keep its order)."""
    of: dict[int, list[tuple[int, dict]]] = {}
    for at, item in enumerate(items):
        of.setdefault(item["dealId"], []).append((at, item))
    return of


def _per_account(items: list[dict]) -> dict:
    """How many items (account contacts, deals) each account has."""
    counted: dict = {}
    for item in items:
        counted[item.get("account")] = counted.get(item.get("account"), 0) + 1
    return counted


def _contains(needle: str, *hay) -> bool:
    return any(needle in str(h or "").lower() for h in hay)


def _contact_text_filters(q: dict[str, str], status_of: dict[str, int]) -> list[Callable[[dict], bool]]:
    """One test per text filter of /contacts (AC reference, list all contacts): `email` exact, `email_like`
    contains, `search` in names, email, phone and organisation, `phone` starts with, `status` (-1 = any)."""
    keep: list[Callable[[dict], bool]] = []
    if email := q.get("email", "").strip().lower():
        keep.append(lambda c: str(c.get("email") or "").lower() == email)
    if like := q.get("email_like", "").lower():
        keep.append(lambda c: _contains(like, c.get("email")))
    if search := q.get("search", "").strip().lower():
        keep.append(lambda c: _contains(search, c.get("firstName"), c.get("lastName"), c.get("email"),
                                        f"{c.get('firstName') or ''} {c.get('lastName') or ''}",
                                        c.get("phone"), c.get("orgname")))
    if phone := q.get("phone", ""):
        keep.append(lambda c: str(c.get("phone") or "").startswith(phone))
    if (status := _int(q.get("status"), -1)) != -1:
        keep.append(lambda c: status_of.get(str(c.get("id")), 1) == status)
    return keep


def _page_input(q: dict[str, str], ql: list[tuple[str, str]], limit: int, offset: int) -> dict:
    """`meta.page_input` of /contacts: the request echoed as AC's example shows it [SPEC]."""
    echoed = {name: _int(q.get(name), 0) for name in ("segmentid", "formid", "listid", "tagid")}
    return {**echoed, "limit": limit, "offset": offset, "search": q.get("search") or None, "sort": None,
            "seriesid": _int(q.get("seriesid"), 0), "waitid": _int(q.get("waitid"), 0),
            "status": _int(q.get("status"), -1), "forceQuery": 0, "cacheid": _md5(urlencode(sorted(ql)))}


def _lower(key: str) -> Callable[[dict], str]:
    return lambda record: str(record.get(key) or "").lower()


# /contacts orders (AC reference, list all contacts); no scores are modelled: every contact's is 0 (AC wants
# sortId with orders[score] too)
CONTACT_ORDERS: dict[str, Callable[[dict], object]] = {
    "id": lambda c: _int(c.get("id"), 0), "cdate": lambda c: _ts(c.get("cdate")), "score": lambda c: 0,
    "email": _lower("email"), "first_name": _lower("firstName"), "last_name": _lower("lastName"),
    "name": lambda c: (_lower("firstName")(c), _lower("lastName")(c))}


def _value_bounds(q: dict[str, str]) -> list[Callable[[dict], bool]]:
    """`filters[minimum_value|maximum_value]` (AC reference: an integer, "In USD with dollar portion"; a deal's
    value is in cents); a bound AC cannot read is ignored, as AC ignores it."""
    keep: list[Callable[[dict], bool]] = []
    for name, within in (("minimum_value", lambda cents, v: cents >= v),
                         ("maximum_value", lambda cents, v: cents <= v)):
        try:
            bound = int(q[f"filters[{name}]"].strip()) * 100
        except (KeyError, ValueError):
            continue
        keep.append(lambda d, b=bound, w=within: d.get("value") is not None and w(_int(d["value"], 0), b))
    return keep


def _weight(term: str, name) -> int:
    """AC's "weight" order for a search term [AC-MCP]: exact matches first, then names starting with it, then
    the others (0, 1, 2; no term: all 0)."""
    name = str(name or "").lower()
    return 0 if not term or name == term else 1 if name.startswith(term) else 2


def _active_per_list(items: list[dict]) -> dict[str, int]:
    """How many active (status 1) subscribers each list has."""
    counted: dict[str, int] = {}
    for item in items:
        if str(item.get("status")) == "1":
            counted[str(item.get("list"))] = counted.get(str(item.get("list")), 0) + 1
    return counted


# ---------------------------------------------------------------- data generation

def _gen_accounts(rng: random.Random, n: int, link: str) -> list[dict]:
    firsts = [f"{c} {rng.choice(SUFFIXES)}" for c in rng.sample(COMPANIES, len(COMPANIES))]
    rest = [f"{c} {s}" for c in COMPANIES for s in SUFFIXES if f"{c} {s}" not in firsts]
    rng.shuffle(rest)
    names = (firsts + rest)[:n] + [f"Account {k + 1}" for k in range(len(firsts) + len(rest), n)]
    acme = n // 7
    if n:
        names[acme] = "Acme Corporation"
    if acme + 1 < n:
        names[max(acme + 1, n * 3 // 5)] = "Acme Corporation Europe"
    out = []
    for i, name in enumerate(names):
        aid = str(i + 1)
        created = _between(rng, EPOCH - timedelta(days=365), NOW - timedelta(days=10))
        updated = created if rng.random() < 0.3 else _between(rng, created, NOW)
        out.append({"name": name, "accountUrl": f"https://www.{_slug(name)}.example" if rng.random() < 0.7
                    else None, "createdTimestamp": _iso(created), "updatedTimestamp": _iso(updated),
                    "contactCount": "0", "dealCount": "0",
                    "links": {k: f"{link}/accounts/{aid}/{k}"
                              for k in ("notes", "accountCustomFieldData", "accountContacts")},
                    "id": aid})
    return out


def _gen_contacts(rng: random.Random, n: int, accounts: list[dict], link: str):
    step = max(1, (n - 2) // 4)
    johns = {2 + k * step: last for k, last in enumerate(JOHNS)}
    contacts, status, seen = [], {}, set()
    for i in range(n):
        cid = str(i + 1)
        if i in johns:
            first, last = "John", johns[i]
        elif i % 23 == 11:
            first = last = ""  # AC has plenty of contacts without names
        else:
            first, last = rng.choice(FIRST), rng.choice(LAST)
        f, la = _slug(first), _slug(last)
        local = rng.choice([f"{f}.{la}", f"{f[:1]}{la}", f"{f}{rng.randint(1, 99)}", f"{la}.{f}"]) if f \
            else rng.choice(["info", "hello", "sales", "office"]) + str(rng.randint(1, 999))
        email = f"{local}@{rng.choice(DOMAINS)}"
        if email in seen:
            email = f"{local}{cid}@{email.split('@')[1]}"
        seen.add(email)
        cdate = EPOCH + (NOW - EPOCH) * (0.9 * i / max(n, 1)) + timedelta(minutes=rng.randint(0, 900))
        udate = cdate if rng.random() < 0.25 else _between(rng, cdate, NOW)
        account = rng.choice(accounts) if accounts and rng.random() < 0.6 else None
        phone = "" if rng.random() < 0.2 else rng.choice(
            ["+1 (555) 01{}-{:04d}", "555-01{}-{:04d}", "+44 20 79{} {:04d}"]).format(
                rng.randint(0, 9), rng.randint(0, 9999))
        status[cid] = rng.choices([1, 0, 2, 3], weights=[85, 5, 7, 3])[0]
        bounced = status[cid] == 3
        contacts.append({
            "cdate": _iso(cdate), "email": email, "phone": phone, "firstName": first, "lastName": last,
            "orgid": account["id"] if account else "0", "orgname": account["name"] if account else "",
            "segmentio_id": "", "bounced_hard": "1" if bounced else "0", "bounced_soft": "0",
            "bounced_date": udate.date().isoformat() if bounced else "0000-00-00", "ip": "0", "ua": "",
            "hash": _md5(email),
            "socialdata_lastcheck": None, "email_local": "", "email_domain": "",
            "sentcnt": str(rng.randint(0, 40)), "rating_tstamp": "0000-00-00", "gravatar": rng.choice("01"),
            "deleted": "0", "anonymized": "0", "adate": None, "udate": _iso(udate), "edate": None,
            "deleted_at": None, "created_utc_timestamp": _stamp(cdate.astimezone(UTC)),
            "updated_utc_timestamp": _stamp(udate.astimezone(UTC)), "created_timestamp": _stamp(cdate),
            "updated_timestamp": _stamp(udate), "created_by": None, "updated_by": None, "mpp_tracking": "0",
            "email_empty": False, "scoreValues": [], "accountContacts": [],
            "links": {k: f"{link}/contacts/{cid}/{k}" for k in CONTACT_LINKS},
            "id": cid, "organization": None,
        })
    return contacts, status


def _gen_field_options(link: str) -> tuple[list[dict], list[dict]]:
    """The allowed values of the choice fields (`fieldOptions`) and every field's relation to the lists
    (`fieldRels`; relid 0 = all lists), as AC's "Contact Custom Fields API guide" builds them: options for
    dropdown, listbox, radio and checkbox fields (`POST /fieldOption/bulk`), and a relation with relid 0 so the
    field shows for every list (`POST /fieldRels`; ActiveCampaign's own MCP server always adds that one).
    Shapes: Singer's schemas `contact_custom_field_options.json` / `contact_custom_field_rels.json`, AC's usual
    strings for ids and numbers."""
    created = _iso(EPOCH - timedelta(days=60))
    options, rels = [], []
    for fid, (_, _, kind, choices) in enumerate(ALL_FIELDS, start=1):
        if kind in CHOICE_FIELDS:
            for order, choice in enumerate(choices, start=1):
                oid = str(len(options) + 1)
                options.append({"field": str(fid), "orderid": str(order), "value": choice, "label": choice,
                                "isdefault": "0", "cdate": created, "udate": created,
                                "links": {"field": f"{link}/fieldOptions/{oid}/field"}, "id": oid})
        rid = str(len(rels) + 1)
        rels.append({"field": str(fid), "relid": "0", "dorder": "0", "cdate": created, "links": [], "id": rid})
    return options, rels


def _gen_fields(rng: random.Random, contacts: list[dict], link: str, later_rng: random.Random):
    created = EPOCH - timedelta(days=60)
    options, rels = _gen_field_options(link)
    fields = [{"title": title, "descript": "", "type": kind, "isrequired": "0", "perstag": tag, "defval": "",
               "show_in_list": "0", "rows": "0", "cols": "0", "visible": "1", "service": "",
               "ordernum": str(i + 1), "cdate": _iso(created), "udate": _iso(created),
               "options": [o["id"] for o in options if o["field"] == str(i + 1)],
               "relations": [r["id"] for r in rels if r["field"] == str(i + 1)],
               "links": {k: f"{link}/fields/{i + 1}/{k}" for k in ("options", "relations")},
               "id": str(i + 1)} for i, (title, tag, kind, _) in enumerate(ALL_FIELDS)]
    values: list[dict] = []
    first, later = list(enumerate(FIELDS, start=1)), list(enumerate(LATER_FIELDS, start=len(FIELDS) + 1))
    for contact in contacts:    # a contact's values together, as AC's sideloads list them
        _gen_values(rng, contact, first, values, link)
        _gen_values(later_rng, contact, later, values, link)   # their own stream: FIELDS' values stay
    return fields, values, options, rels


def _gen_values(rng: random.Random, contact: dict, fields, values: list[dict], link: str) -> None:
    """Append to `values` the contact's values of these (id, field spec) pairs, about 65 % set."""
    cdate = datetime.fromisoformat(contact["cdate"])
    for fid, (_, _, kind, choices) in fields:
        if rng.random() >= 0.65:
            continue
        if kind == "date":
            value = (date(1960, 1, 1) + timedelta(days=rng.randint(0, 15000))).isoformat()
        elif kind in ("checkbox", "listbox"):   # "||" is a multi-select with nothing chosen (clients skip it)
            value = "||" + "".join(f"{c}||" for c in rng.sample(choices, rng.randint(0, 3)))
        else:
            value = rng.choice(choices)
        vid = str(len(values) + 1)
        values.append({"contact": contact["id"], "field": str(fid), "value": value, "cdate": _iso(cdate),
                       "udate": _iso(_between(rng, cdate, NOW)),
                       "links": {"owner": f"{link}/fieldValues/{vid}/owner",
                                 "field": f"{link}/fieldValues/{vid}/field"},
                       "id": vid, "owner": contact["id"]})


def _gen_pipelines(link: str):
    created, groups, stages = _iso(EPOCH - timedelta(days=90)), [], []
    colors = ["32B0FC", "FFA800", "A5E75E", "F15A5A"]
    for gid, (title, names) in enumerate(PIPELINES, start=1):
        ids = [str(len(stages) + k + 1) for k in range(len(names))]
        groups.append({"id": str(gid), "title": title, "currency": "usd", "stages": ids, "cdate": created,
                       "udate": created, "allgroups": "1", "allusers": "1", "autoassign": "1",
                       "links": {"stages": f"{link}/dealGroups/{gid}/stages"}})
        stages.extend({"id": sid, "title": name, "group": str(gid), "order": str(k + 1),
                       "color": colors[k % len(colors)], "dealOrder": "next-action DESC",
                       "cardRegion1": "title", "cardRegion2": "next-action", "cardRegion3": "show-avatar",
                       "cardRegion4": "contact-fullname-orgname", "cardRegion5": "value",
                       "cdate": created, "udate": created, "width": "280",
                       "links": {"group": f"{link}/dealStages/{sid}/group"}}
                      for k, (sid, name) in enumerate(zip(ids, names, strict=True)))
    return groups, stages


def _gen_deals(rng: random.Random, n: int, contacts, accounts, stages, link: str) -> list[dict]:
    by_id = {a["id"]: a for a in accounts}
    deals = []
    for i in range(n):
        did = str(i + 1)
        if i == min(1, n - 1):  # the "disabled" system row AC really returns among deals
            deals.append({"id": did, "isDisabled": 1, "title": "Demo Requested"})
            continue
        if i % 7 == 5:  # a deal in a pipeline the key's user may not see: AC sends only id, title, isDisabled
            deals.append({"id": did, "isDisabled": 1, "title": f"Restricted - {rng.choice(PRODUCTS)}"})
            continue
        contact = rng.choice(contacts) if contacts else None
        account = by_id.get(contact["orgid"]) if contact else None
        if account is None and accounts and rng.random() < 0.3:
            account = rng.choice(accounts)
        stage = rng.choice(stages)
        cdate = _between(rng, EPOCH, NOW - timedelta(days=2))
        mdate = cdate if rng.random() < 0.2 else _between(rng, cdate, NOW)
        company = account["name"] if account else (contact and contact["lastName"]) or "Inbound"
        title = f"{company} - {rng.choice(PRODUCTS)}"
        deals.append({
            "owner": rng.choice("1123"), "contact": contact["id"] if contact else None,
            "organization": account["id"] if account else None, "group": stage["group"], "stage": stage["id"],
            "title": title, "description": rng.choice(["", f"Follow-up on {title}.", "Inbound lead."]),
            "percent": "0", "cdate": _iso(cdate), "mdate": _iso(mdate),
            "nextdate": _iso(_between(rng, NOW, NOW + timedelta(days=30))) if rng.random() < 0.4 else None,
            "nexttaskid": None, "value": str(rng.randint(5, 900) * 10000 + rng.choice([0, 0, 0, 50, 99])),
            "currency": "usd", "winProbability": rng.choice([None, rng.randint(5, 95)]),
            "winProbabilityMdate": _iso(mdate), "status": rng.choices("012", weights=[60, 25, 15])[0],
            "activitycount": str(rng.randint(0, 12)), "nextdealid": did,
            "edate": _stamp(mdate) if rng.random() < 0.5 else None,
            "links": {k: f"{link}/deals/{did}/{k}" for k in DEAL_LINKS}, "id": did, "isDisabled": False,
            "account": account and account["id"], "customerAccount": account and account["id"],
        })
    return deals


def _gen_account_contacts(rng: random.Random, contacts: list[dict], link: str) -> list[dict]:
    """A contact is on at most one account (AC reference: "We currently do not support contacts on multiple
    accounts"); its record lists the link's id in `accountContacts` (AC reference, list all contacts)."""
    out = []
    for contact in contacts:
        if contact["orgid"] == "0":
            continue
        acid = str(len(out) + 1)
        stamp = contact["cdate"]
        out.append({"account": contact["orgid"], "contact": contact["id"],
                    "jobTitle": rng.choice(["", "CEO", "Buyer", "Engineer", "Marketing Lead"]),
                    "createdTimestamp": stamp, "updatedTimestamp": stamp,
                    "links": {"account": f"{link}/accountContacts/{acid}/account",
                              "contact": f"{link}/accountContacts/{acid}/contact"}, "id": acid})
        contact["accountContacts"] = [acid]
    return out


def _gen_tags_and_lists(rng: random.Random, contacts: list[dict], link: str):
    """Tags and lists (AC reference / public schemas: every scalar a string, `udate`/`user` may be null),
    and the contacts' links to them: contactTags and contactLists (status "1" active, "2" unsubscribed,
    "3" as in AC's example; shapes as AC's /contacts/{id}/contactLists example)."""
    created = EPOCH - timedelta(days=120)
    # some lists edited since (without drawing from `rng`: the memberships below stay as they were)
    edited = [created + timedelta(days=97 * i, hours=5 * i) for i in range(len(LISTS))]
    tags = [{"tagType": "contact", "tag": name, "description": "", "cdate": _iso(created),
             "subscriber_count": "0", "created_timestamp": _stamp(created), "updated_timestamp": _stamp(created),
             "created_by": None, "updated_by": None, "deleted": "0",
             "links": {k: f"{link}/tags/{i + 1}/{k}" for k in TAG_LINKS}, "id": str(i + 1)}
            for i, name in enumerate(TAGS)]
    lists = [{"stringid": _slug(name) or f"list-{i + 1}", "userid": "1", "name": name, "cdate": _iso(created),
              "p_use_tracking": "1", "p_use_analytics_read": "0", "p_use_analytics_link": "0",
              "p_use_twitter": "0", "p_use_facebook": "0", "p_embed_image": "1", "p_use_captcha": "1",
              "send_last_broadcast": "0", "private": "0", "analytics_domains": None, "analytics_source": "",
              "analytics_ua": "", "twitter_token": "", "twitter_token_secret": "", "facebook_session": None,
              "carboncopy": None, "subscription_notify": None, "unsubscription_notify": None,
              "require_name": "0", "get_unsubscribe_reason": "0", "to_name": "Subscriber", "optinoptout": "1",
              "sender_name": "", "sender_addr1": "", "sender_addr2": "", "sender_city": "", "sender_state": "",
              "sender_zip": "", "sender_country": "", "sender_phone": "", "sender_url": "",
              "sender_reminder": "", "fulladdress": "", "optinmessageid": "0", "optoutconf": "0",
              "deletestamp": None, "udate": None, "channel": "email",
              # singer-io tap-activecampaign schemas/lists.json; its lists stream replicates on updated_timestamp
              "created_timestamp": _stamp(created), "updated_timestamp": _stamp(edited[i]), "created_by": None,
              "updated_by": None,
              "links": {k: f"{link}/lists/{i + 1}/{k}" for k in LIST_LINKS}, "id": str(i + 1), "user": "1"}
             for i, name in enumerate(LISTS)]
    contact_tags, contact_lists = [], []
    for contact in contacts:
        stamp = datetime.fromisoformat(contact["cdate"])
        for tag in rng.sample(tags, rng.choice([0, 0, 1, 1, 2, 3])):
            ctid = str(len(contact_tags) + 1)
            contact_tags.append({"contact": contact["id"], "tag": tag["id"], "cdate": _iso(stamp),
                                 "created_timestamp": _stamp(stamp), "updated_timestamp": _stamp(stamp),
                                 "created_by": None, "updated_by": None,
                                 "links": {"tag": f"{link}/contactTags/{ctid}/tag",
                                           "contact": f"{link}/contactTags/{ctid}/contact"}, "id": ctid})
        for member in [lists[0], *rng.sample(lists[1:], rng.choice([0, 1, 2]))]:
            clid = str(len(contact_lists) + 1)
            status = rng.choices(["1", "2", "3"], weights=[85, 12, 3])[0]
            contact_lists.append({
                "contact": contact["id"], "list": member["id"], "form": _form_of(contact, member is lists[0]),
                "seriesid": "0",
                "sdate": _iso(stamp), "udate": _iso(stamp) if status != "1" else None, "status": status,
                "responder": "1", "sync": "0", "unsubreason": "", "campaign": None, "message": None,
                "first_name": contact["firstName"], "last_name": contact["lastName"], "ip4Sub": "0",
                "sourceid": "0", "autosyncLog": None, "ip4_last": "0", "ip4Unsub": "0",
                "created_timestamp": _stamp(stamp), "updated_timestamp": _stamp(stamp), "created_by": None,
                "updated_by": None, "unsubscribeAutomation": None,
                "links": {k: f"{link}/contactLists/{clid}/{k}" for k in ("automation", "list", "contact",
                                                                           "form", "unsubscribeAutomation")},
                "id": clid, "automation": None})
    return tags, lists, contact_tags, contact_lists


def _form_of(contact: dict, master: bool) -> str | None:
    """The form a contact subscribed through (contactLists' `form`; `/contacts?formid=`): every fifth contact
    joined the first list by form 1 or 2, everybody else without a form (no random draw: the rest of the data
    stays as it was)."""
    cid = _int(contact.get("id"), 0)
    return str(1 + cid // 5 % 2) if master and cid % 5 == 0 else None


def _gen_users(link: str) -> list[dict]:
    return [{"username": username, "firstName": first, "lastName": last, "email": f"{username}@example.com",
             "phone": "", "signature": None, "links": {k: f"{link}/users/{i + 1}/{k}" for k in USER_LINKS},
             "id": str(i + 1)} for i, (username, first, last) in enumerate(USERS)]


def _gen_custom_fields(rng: random.Random, kind: str, owners: list[dict], specs, link: str):
    """Deal or account custom fields: `<kind>CustomFieldMeta` and `<kind>CustomFieldData` as AC's reference
    shows them (camelCase; data ids strings, `<kind>CustomFieldMetumId`/`customFieldId` ints; the owner is
    `dealId` (int) for deals and `accountId` (int) for accounts)."""
    created = _stamp(EPOCH - timedelta(days=30))
    meta = [{"id": str(i + 1), "fieldLabel": label, "fieldType": ftype, "fieldOptions": options or None,
             "fieldDefault": None, "fieldDefaultCurrency": None, "isFormVisible": 1, "isRequired": 0,
             "displayOrder": i + 1, "personalization": "", "knownFieldId": None, "hideFieldFlag": 0,
             "createdTimestamp": created, "updatedTimestamp": created,
             "links": {f"{kind}CustomFieldData": f"{link}/{kind}CustomFieldMeta/{i + 1}/{kind}CustomFieldData"}}
            for i, (label, ftype, options) in enumerate(specs)]
    data = []
    for owner in owners:
        if "isDisabled" in owner and "group" not in owner:
            continue
        for field in meta:
            if rng.random() >= 0.6:
                continue
            kind_ = field["fieldType"]
            value = (str(rng.randint(1, 500)) if kind_ == "number" else
                     (date(2025, 7, 1) + timedelta(days=rng.randint(0, 180))).isoformat() if kind_ == "date"
                     else rng.choice(field["fieldOptions"] or ["n/a"]))
            did, parent = str(len(data) + 1), "deal" if kind == "deal" else "account"
            data.append({"id": did, f"{kind}CustomFieldMetumId": int(field["id"]), f"{parent}Id": int(owner["id"]),
                         "customFieldId": int(field["id"]), "createdTimestamp": created,
                         "updatedTimestamp": created, "fieldValue": value,
                         "links": {k: f"{link}/{kind}CustomFieldData/{did}/{k}"
                                   for k in (parent, f"{kind}CustomFieldMetum")}})
    return meta, data


# ---------------------------------------------------------------- the server

class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64  # the default backlog of 5 drops connections under parallel clients
    sandbox: ACSandbox

    def server_bind(self) -> None:  # skip HTTPServer's reverse-DNS lookup of the host (slow on some hosts)
        TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, as AC's API answers: a client's pooled connection carries its next calls (with
    HTTP/1.0 every call paid a new connection here, which real AC does not ask for). A connection kept from
    before `stop()` is closed unanswered at its next request, as a stopped server's would be."""
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 30      # an idle kept-alive connection is closed after this (servers keep them ~60 s)
    disable_nagle_algorithm = True   # headers and body are two writes: with Nagle the body waited ~40 ms for an ACK

    def setup(self) -> None:
        super().setup()
        sandbox = self.server.sandbox
        with sandbox._lock:
            sandbox.connections += 1

    def version_string(self) -> str:
        return "ACSandbox/1.0"

    def log_message(self, format, *args) -> None:  # quiet
        pass

    def _serve(self) -> None:
        sb = self.server.sandbox
        if sb._server is not self.server:       # stopped (or restarted) since this connection was opened
            self.close_connection = True
            return
        split = urlsplit(self.path)
        rel, query = sb._rel(split.path), parse_qsl(split.query, keep_blank_values=True)
        key = self.headers.get("Api-Token")
        length = _int(self.headers.get("Content-Length"), 0)
        body = self.rfile.read(length) if length > 0 else b""
        record = RecordedRequest(self.command, rel, query, key, 0, time.monotonic())
        with sb._lock:
            sb.requests.append(record)
        try:
            status, headers, body = sb._answer(self.command, rel, query, key, body)
        except Exception:
            traceback.print_exc()
            status, headers, body = 500, {"Content-Type": JSON}, b'{"message": "Internal Server Error"}'
        record.status = status
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:  # the client went away (e.g. its read timeout fired during an injected delay)
            self.close_connection = True

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


_ROUTES = {"/": "_root", "/users/me": "_users_me", "/contacts": "_contacts", "/fields": "_fields",
           "/fieldValues": "_field_values", "/deals": "_deals", "/dealGroups": "_deal_groups",
           "/dealStages": "_deal_stages", "/accounts": "_accounts", "/tags": "_tags", "/lists": "_lists",
           "/users": "_users", "/accountContacts": "_account_contacts", "/contactTags": "_contact_tags",
           "/contactLists": "_contact_lists",
           "/dealCustomFieldMeta": "_deal_custom_field_meta", "/dealCustomFieldData": "_deal_custom_field_data",
           "/accountCustomFieldMeta": "_account_custom_field_meta",
           "/accountCustomFieldData": "_account_custom_field_data"}
# Single-record reads, GET /<collection>/<id> (AC reference, "Retrieve a contact", "Retrieve a tag", ...):
# collection -> (the data list, the answer's key, the entity AC's 404 names). AC's 404 text is public for
# contacts only ("No Result found for Subscriber with id 100", AC reference, retrieve a contact); the other
# entities' names follow that pattern and are not documented.
SINGLE_READS = {
    "/contacts": ("contacts", "contact", "Subscriber"), "/tags": ("tags", "tag", "Tag"),
    "/fields": ("fields", "field", "Field"), "/fieldValues": ("field_values", "fieldValue", "FieldValue"),
    "/lists": ("lists", "list", "List"), "/deals": ("deals", "deal", "Deal"),
    "/accounts": ("accounts", "account", "Account"), "/users": ("users", "user", "User"),
    "/dealGroups": ("deal_groups", "dealGroup", "Pipeline"), "/dealStages": ("deal_stages", "dealStage", "Stage"),
    "/accountContacts": ("account_contacts", "accountContact", "AccountContact"),
    "/contactTags": ("contact_tags", "contactTag", "ContactTag"),
    "/contactLists": ("contact_lists", "contactList", "ContactList"),
    "/dealCustomFieldMeta": ("deal_custom_field_meta", "dealCustomFieldMetum", "DealCustomFieldMetum"),
    "/dealCustomFieldData": ("deal_custom_field_data", "dealCustomFieldDatum", "DealCustomFieldDatum"),
    "/accountCustomFieldMeta": ("account_custom_field_meta", "accountCustomFieldMetum", "AccountCustomFieldMetum"),
    "/accountCustomFieldData": ("account_custom_field_data", "accountCustomFieldDatum", "AccountCustomFieldDatum"),
}
# A record's links the stand-in serves, GET /<collection>/<id>/<link> (AC reference: "Retrieve a contact's
# tags", "... field values", "... contact lists", a pipeline's stages, ...): (collection, link) -> (the data
# list, the field naming the record, the answer's key). Its other links answer the "not modelled" JSON 404.
LINKS = {
    ("/contacts", "fieldValues"): ("field_values", "contact", "fieldValues"),
    ("/contacts", "contactTags"): ("contact_tags", "contact", "contactTags"),
    ("/contacts", "contactLists"): ("contact_lists", "contact", "contactLists"),
    ("/contacts", "deals"): ("deals", "contact", "deals"),
    ("/contacts", "accountContacts"): ("account_contacts", "contact", "accountContacts"),
    ("/accounts", "accountContacts"): ("account_contacts", "account", "accountContacts"),
    ("/accounts", "accountCustomFieldData"): ("account_custom_field_data", "accountId", "accountCustomFieldData"),
    ("/deals", "dealCustomFieldData"): ("deal_custom_field_data", "dealId", "dealCustomFieldData"),
    ("/dealGroups", "stages"): ("deal_stages", "group", "dealStages"),
    ("/fields", "options"): ("field_options", "field", "fieldOptions"),
    ("/fields", "relations"): ("field_rels", "field", "fieldRels"),
}
# AC v3 collections this stand-in does not model (the product does not read them; the real clients do:
# Singer's streams, Airbyte's manifest, ActiveCampaign's own MCP server): answered with a JSON 404 that says
# so, where a path AC does not have gets AC's HTML 404.
NOT_MODELLED = frozenset({
    "activities", "addresses", "automationBlocks", "automations", "bounceLogs", "brandings", "calendars",
    "campaignLists", "campaignMessages", "campaigns", "configs", "connections", "contactAutomations",
    "contactConversions", "contactData", "contactDeals", "contactEmails", "conversionTriggers", "conversions",
    "dealActivities", "dealGroupUsers", "dealTasks", "dealTasktypes", "ecomCustomers", "ecomOrderActivities",
    "ecomOrders", "emailActivities", "fieldOptions", "fieldRels", "forms", "goals", "groups", "links",
    "messages", "notes", "savedResponses", "scores", "segments", "siteMessages", "sms", "templates"})


def _single_path(rel: str) -> tuple[str, str, str | None] | None:
    """("/contacts", "7", None) for "/contacts/7", ("/contacts", "7", "contactTags") for "/contacts/7/contactTags"
    (a record's link), when the sandbox serves single reads of that collection."""
    parts = rel.split("/")
    if len(parts) in (3, 4) and all(parts[2:]) and f"/{parts[1]}" in SINGLE_READS:
        return f"/{parts[1]}", parts[2], parts[3] if len(parts) == 4 else None
    return None


def _not_served(rel: str) -> tuple[int, str, bytes]:
    """An AC feature the stand-in does not model: a JSON 404 saying so; anything else: AC's HTML 404."""
    if rel.split("/")[1] in NOT_MODELLED:
        message = f"The ActiveCampaign sandbox does not model /{rel.split('/')[1]} (it serves contacts, deals, " \
                  "accounts and what they refer to)"
        return 404, JSON, json.dumps({"message": message}).encode()
    return 404, "text/html", NOT_FOUND


# What a key's user group may lack, and how AC words the refusal (AC reference, GET /lists 403 example).
PERMISSION_WORDS = {"/deals": "view deals", "/accounts": "view accounts", "/lists": "view lists",
                    "/tags": "view tags", "/users": "view users", "/contacts": "view contacts",
                    "/dealCustomFieldMeta": "view deals", "/dealCustomFieldData": "view deals",
                    "/accountCustomFieldMeta": "view accounts", "/accountCustomFieldData": "view accounts",
                    "/dealGroups": "view deals", "/dealStages": "view deals"}


# ---------------------------------------------------------------- webhooks and deliveries (the live-changes work)
#
# AC's webhook API and delivery format as public evidence shows them (docs/live.md has the sources):
# - `POST /api/3/webhooks` {"webhook": {name, url, events, sources, listid?}} -> 201 {"webhook": {..., "id"}}
#   with `id`/`listid` as strings; name, url, events and sources required; `GET /api/3/webhooks` (key
#   `webhooks`, `meta.total` a string, `filters[name|url|listid]`), `GET|DELETE /api/3/webhooks/{id}`
#   (DELETE answers 200 `{}`), `GET /api/3/webhook/events` (key `webhookEvents`, `meta.total` an int);
#   AC's reference copy in api-evangelist/activecampaign, and n8n, Pipedream and Activepieces;
# - deliveries: one POST per event, `application/x-www-form-urlencoded` with bracketed keys
#   (GearPlug's raw fixtures; Activepieces' sample data), `date_time` with a numeric offset, never retried
#   ("Webhooks are never retried", AC's webhooks page), no signature, no event id; `contact[tags]` a
#   comma-separated string; `deal[value]` a display string and `deal[value_raw]` whole units.
# A change made from outside (the methods below, or `/_sandbox/...` over HTTP for curl) updates the data
# the API serves and posts a delivery to every webhook whose events and sources match; a deletion
# (`delete`, `DELETE /_sandbox/{contacts|deals|accounts}/{id}`) posts none, as AC (the reconcile finds it).

# The documented `GET /webhook/events` example (25 names, alphabetical) [AC-WH-API].
WEBHOOK_EVENTS = ["bounce", "click", "contact_tag_added", "contact_tag_removed", "deal_add", "deal_note_add",
                  "deal_pipeline_add", "deal_stage_add", "deal_task_add", "deal_task_complete",
                  "deal_tasktype_add", "deal_update", "forward", "list_add", "open", "reply", "sent", "share",
                  "sms_reply", "sms_sent", "sms_unsub", "subscribe", "subscriber_note", "unsubscribe", "update"]
# Registered although the documented list omits them: Activepieces registers `account_add` and
# `account_update` and publishes a real `account_update` delivery [AP]; `refused_events` makes this sandbox an
# AC account that refuses some (422), as an account without them might.
ACCOUNT_WEBHOOK_EVENTS = ["account_add", "account_update"]
WEBHOOK_SOURCES = ["public", "admin", "api", "system"]
CONTROL_PREFIX = "/_sandbox/"
DELIVERY_TIMEOUT = 10.0


@dataclass
class Delivery:
    """One POST the sandbox made to a webhook URL (`status` 0 = no answer, e.g. refused or timed out)."""

    webhook_id: str
    url: str
    type: str
    body: bytes
    status: int = 0
    sent_at: float = 0.0      # time.monotonic() when the POST started
    elapsed: float = 0.0      # seconds until the answer


def _validation_error(title: str, pointer: str) -> tuple[int, dict[str, str], bytes]:
    body = {"errors": [{"title": title, "detail": "", "code": "field_invalid",
                        "source": {"pointer": f"/data/attributes/{pointer}"}}]}
    return 422, {"Content-Type": JSON}, json.dumps(body).encode()


class WebhooksMixin:
    """The webhook endpoints, the deliveries and the outside changes of ACSandbox (state in `webhooks`,
    `deliveries`)."""

    delivery_concurrency = 8   # deliveries in flight at once (AC's own concurrency is not documented)

    def _init_webhooks(self) -> None:
        self.webhooks: dict[str, dict] = {}
        self.deliveries: list[Delivery] = []
        self._webhook_seq = 0
        self.refused_events: set[str] = set()   # events POST /webhooks refuses with 422 (reset: none)
        self._live_tags: dict[str, list[str]] = {}
        self._pool = None
        self._pending: list = []

    # -- AC's webhook API
    def _webhook_api(self, method: str, rel: str, query, body: bytes):
        """(status, headers, body) for /webhooks and /webhook/events, None for any other path."""
        q = dict(query)
        if rel == "/webhook/events":
            if method != "GET":
                return 405, {"Content-Type": JSON}, b'{"message": "Method Not Allowed"}'
            limit, offset = _page(q, default_limit=100)
            page = WEBHOOK_EVENTS[offset:offset + limit]
            return 200, {"Content-Type": JSON}, json.dumps(
                {"webhookEvents": page, "meta": {"total": len(WEBHOOK_EVENTS)}}).encode()
        if rel == "/webhooks" and method == "POST":
            return self._create_webhook(body)
        if rel == "/webhooks" and method == "GET":
            with self._lock:
                items = [w for w in self.webhooks.values()
                         if all(not q.get(f"filters[{k}]") or str(w.get(k)) == q[f"filters[{k}]"]
                                for k in ("name", "url", "listid"))]
            limit, offset = _page(q)
            return 200, {"Content-Type": JSON}, json.dumps(
                {"webhooks": items[offset:offset + limit], "meta": {"total": str(len(items))}}).encode()
        if rel.startswith("/webhooks/") and rel.count("/") == 2:
            wid = rel.rsplit("/", 1)[1]
            with self._lock:
                hook = self.webhooks.get(wid)
                if hook is not None and method == "DELETE":
                    del self.webhooks[wid]
            if hook is None:
                message = f"No Result found for Webhook with id {wid}"
                return 404, {"Content-Type": JSON}, json.dumps({"message": message}).encode()
            if method == "DELETE":
                return 200, {"Content-Type": JSON}, b"{}"
            if method == "GET":
                return 200, {"Content-Type": JSON}, json.dumps({"webhook": hook}).encode()
            return 405, {"Content-Type": JSON}, b'{"message": "Method Not Allowed"}'
        return None

    def _create_webhook(self, body: bytes):
        try:
            spec = json.loads(body or b"{}").get("webhook")
        except (ValueError, AttributeError):
            spec = None
        if not isinstance(spec, dict):
            return 400, {"Content-Type": JSON}, b"{}"
        for name in ("name", "url"):
            if not isinstance(spec.get(name), str) or not spec[name].strip():
                return _validation_error(f"The {name} field is required", name)
        url = urlsplit(spec["url"])
        if url.scheme not in ("http", "https") or not url.hostname or (url.scheme == "https" and url.port
                                                                       not in (None, 443)):
            # "for https endpoints, we only can send webhooks on port 443" [AC-WH-API]
            return _validation_error("The url is not valid", "url")
        accepted = [e for e in (*WEBHOOK_EVENTS, *ACCOUNT_WEBHOOK_EVENTS) if e not in self.refused_events]
        for name, allowed in (("events", accepted), ("sources", WEBHOOK_SOURCES)):
            values = spec.get(name)
            if not isinstance(values, list) or not values or any(v not in allowed for v in values):
                return _validation_error(f"The {name} field is invalid", name)
        with self._lock:
            self._webhook_seq += 1
            wid = str(self._webhook_seq)
            hook = {"cdate": _iso(datetime.now(TZ)), "listid": str(_int(spec.get("listid"), 0)),
                    "name": spec["name"], "url": spec["url"], "events": list(spec["events"]),
                    "sources": list(spec["sources"]), "links": [], "id": wid}
            self.webhooks[wid] = hook
        return 201, {"Content-Type": JSON}, json.dumps({"webhook": hook}).encode()

    # -- deliveries
    def fire(self, event_type: str, pairs: list[tuple[str, str]], *, initiated_by: str = "admin") -> list[Delivery]:
        """Post one delivery of `event_type` to every webhook subscribed to it from `initiated_by`
        (asynchronously, as AC does: the caller does not wait). Returns the queued deliveries."""
        envelope = [("type", event_type), ("date_time", _iso(datetime.now(TZ))), ("initiated_by", initiated_by),
                    ("initiated_from", initiated_by)]
        body = urlencode([*envelope, *pairs]).encode()   # brackets percent-encoded, as PHP's http_build_query
        with self._lock:
            hooks = [h for h in self.webhooks.values()
                     if event_type in h["events"] and initiated_by in h["sources"]]
        queued = [Delivery(h["id"], h["url"], event_type, body) for h in hooks]
        for delivery in queued:
            self._send(delivery)
        return queued

    def redeliver(self, delivery: Delivery) -> Delivery:
        """Post the same body again: AC's "at least once" (a delivery can arrive twice)."""
        again = Delivery(delivery.webhook_id, delivery.url, delivery.type, delivery.body)
        self._send(again)
        return again

    def _send(self, delivery: Delivery) -> None:
        from concurrent.futures import ThreadPoolExecutor

        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.delivery_concurrency,
                                                thread_name_prefix="ac-webhooks")
            self.deliveries.append(delivery)
            self._pending.append(self._pool.submit(self._post, delivery))

    def _post(self, delivery: Delivery) -> None:
        import urllib.error
        import urllib.request

        request = urllib.request.Request(delivery.url, data=delivery.body, method="POST", headers={
            "Content-Type": "application/x-www-form-urlencoded", "User-Agent": "ActiveCampaign-Webhook"})
        delivery.sent_at = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=DELIVERY_TIMEOUT) as reply:
                reply.read()
                delivery.status = reply.status
        except urllib.error.HTTPError as exc:
            delivery.status = exc.code
        except OSError:
            delivery.status = 0   # never retried [AC-WH-PAGE]
        delivery.elapsed = time.monotonic() - delivery.sent_at

    def wait_for_deliveries(self, timeout: float = 30.0) -> None:
        """Block until every queued delivery has been answered (tests and benchmarks)."""
        from concurrent.futures import wait

        with self._lock:
            pending, self._pending = list(self._pending), []
        wait(pending, timeout=timeout)

    def _stop_webhooks(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    # -- the payload blocks, as the published real deliveries show them (tests/fixtures/ac_webhooks/:
    #    GearPlug's raw 2017 captures [GP-FIX], Activepieces' 2024 samples [AP], AC's AsyncAPI copy [AA])
    @staticmethod
    def _custom_pairs(prefix: str, fields: list[tuple[str, str, object]]) -> list[tuple[str, str]]:
        """`<prefix>[fields][i][id|key|value]` [AP]; a multi-value field's values one level deeper,
        `[value][0]`, `[value][1]` (Activepieces' account_update: five bracket levels)."""
        pairs = []
        for i, (fid, label, value) in enumerate(fields):
            pairs += [(f"{prefix}[fields][{i}][id]", fid), (f"{prefix}[fields][{i}][key]", label)]
            if isinstance(value, list):
                pairs += [(f"{prefix}[fields][{i}][value][{j}]", str(v)) for j, v in enumerate(value)]
            else:
                pairs.append((f"{prefix}[fields][{i}][value]", "" if value is None else str(value)))
        return pairs

    def _custom_values(self, kind: str, owner_id: str) -> list[tuple[str, str, object]]:
        """(meta id, label, value) of a deal's or account's custom fields; a multi-value field's value
        (written as an array, docs: AC reference) as a list."""
        meta = {m["id"]: m for m in getattr(self, f"{kind}_custom_field_meta", [])}
        out = []
        for item in getattr(self, f"{kind}_custom_field_data", []):
            if str(item.get(f"{kind}Id")) != str(owner_id):
                continue
            field = meta.get(str(item.get(f"{kind}CustomFieldMetumId")))
            if field is not None:
                out.append((field["id"], field["fieldLabel"], item.get("fieldValue")))
        return out

    @staticmethod
    def _top_level(contact: dict | None) -> list[tuple[str, str]]:
        """What real bodies carry beside the blocks: the contact's account name and id, and `orgname` [AP]."""
        orgname = (contact or {}).get("orgname") or ""
        return [("customer_acct_name", orgname), ("customer_acct_id", "0"), ("orgname", orgname)]
    def _tag_names(self, cid: str) -> list[str]:
        tags, links = getattr(self, "tags", None), getattr(self, "contact_tags", None)
        if isinstance(tags, list) and isinstance(links, list):
            names = {t.get("id"): t.get("tag") for t in tags}
            return [names[link["tag"]] for link in links if link.get("contact") == cid and link.get("tag") in names]
        return list(self._live_tags.get(cid, []))

    def _set_tag(self, cid: str, tag: str, present: bool) -> None:
        tags, links = getattr(self, "tags", None), getattr(self, "contact_tags", None)
        if isinstance(tags, list) and isinstance(links, list):
            row = next((t for t in tags if t.get("tag") == tag), None)
            if row is None and present:
                row = {"tag": tag, "tagType": "contact", "description": "", "id": str(len(tags) + 1)}
                tags.append(row)
            if row is not None:
                links[:] = [link for link in links if not (link.get("contact") == cid and link.get("tag") == row["id"])]
                if present:
                    links.append({"contact": cid, "tag": row["id"], "id": str(len(links) + 1)})
            return
        names = [t for t in self._live_tags.get(cid, []) if t != tag]
        self._live_tags[cid] = [*names, tag] if present else names

    def _contact_block(self, contact: dict) -> list[tuple[str, str]]:
        cid = str(contact["id"])
        pairs = [("contact[id]", cid), ("contact[email]", contact.get("email") or ""),
                 ("contact[first_name]", contact.get("firstName") or ""),
                 ("contact[last_name]", contact.get("lastName") or ""), ("contact[phone]", contact.get("phone") or ""),
                 ("contact[tags]", ", ".join(self._tag_names(cid))), ("contact[ip]", "0.0.0.0"),
                 ("contact[orgname]", contact.get("orgname") or ""), ("contact[customer_acct_name]", "")]
        pairs += [(f"contact[fields][{fv['field']}]", str(fv.get("value") or ""))
                  for fv in self.field_values if fv.get("contact") == cid]
        return pairs

    def _deal_block(self, deal: dict, updated: list[str] = ()) -> list[tuple[str, str]]:
        stage = next((s for s in self.deal_stages if s["id"] == deal.get("stage")), {})
        group = next((g for g in self.deal_groups if g["id"] == deal.get("group")), {})
        account = next((a for a in self.accounts if a["id"] == deal.get("account")), {})
        contact = next((c for c in self.contacts if c["id"] == deal.get("contact")), None)
        cents = _int(deal.get("value"), 0)
        created = datetime.fromisoformat(deal["cdate"]) if deal.get("cdate") else datetime.now(TZ)
        pairs = [("deal[id]", deal["id"]), ("deal[title]", deal.get("title") or ""),
                 ("deal[create_date]", _stamp(created)), ("deal[create_date_iso]", _iso(created)),
                 ("deal[orgid]", account.get("id", "0")), ("deal[orgname]", account.get("name", "")),
                 ("deal[stageid]", str(deal.get("stage") or "")), ("deal[stage_title]", stage.get("title", "")),
                 ("deal[pipelineid]", str(deal.get("group") or "")), ("deal[pipeline_title]", group.get("title", "")),
                 # a display string with separators, and whole units (never cents) [GP-FIX], [AP]
                 ("deal[value]", f"{cents / 100:,.2f}"), ("deal[value_raw]", str(cents // 100)),
                 ("deal[currency]", deal.get("currency") or "usd"), ("deal[currency_symbol]", "$"),
                 ("deal[owner]", str(deal.get("owner") or "")), ("deal[owner_firstname]", "Demo"),
                 ("deal[owner_lastname]", "User"), ("deal[contactid]", str(deal.get("contact") or "")),
                 ("deal[contact_email]", (contact or {}).get("email") or ""),
                 ("deal[contact_firstname]", (contact or {}).get("firstName") or ""),
                 ("deal[contact_lastname]", (contact or {}).get("lastName") or ""),
                 ("deal[status]", str(deal.get("status") or "0"))]
        pairs += self._custom_pairs("deal", self._custom_values("deal", deal["id"]))
        pairs += [(f"updated_fields[{i}]", name) for i, name in enumerate(updated)]
        if contact is not None:
            pairs += self._contact_block(contact)
        return [*pairs, *self._top_level(contact)]

    def _account_block(self, account: dict, updated: list[str] = ()) -> list[tuple[str, str]]:
        """`account[...]` as Activepieces' real `account_update` shows it [AP]."""
        def stamp(value):
            return _stamp(datetime.fromisoformat(value)) if value else ""

        pairs = [("account[id]", account["id"]), ("account[name]", account.get("name") or ""),
                 ("account[account_url]", account.get("accountUrl") or ""),
                 ("account[created_timestamp]", stamp(account.get("createdTimestamp"))),
                 ("account[updated_timestamp]", stamp(account.get("updatedTimestamp")))]
        pairs += self._custom_pairs("account", self._custom_values("account", account["id"]))
        return pairs + [(f"updated_fields[{i}]", name) for i, name in enumerate(updated)]

    # -- changes from outside (what a user does in AC's UI)
    def _contact(self, contact_id) -> dict:
        contact = next((c for c in self.contacts if str(c.get("id")) == str(contact_id)), None)
        if contact is None:
            raise KeyError(f"no contact {contact_id}")
        return contact

    def _deal(self, deal_id) -> dict:
        deal = next((d for d in self.deals if str(d.get("id")) == str(deal_id) and not d.get("isDisabled")), None)
        if deal is None:
            raise KeyError(f"no deal {deal_id}")
        return deal

    def delete(self, resource: str, record_id) -> dict:
        """Delete a contact, deal or account as AC does: gone from its list, and no delivery (AC has no
        delete event: docs/live.md, "Deletions"). KeyError when there is none."""
        items = {"contacts": self.contacts, "deals": self.deals, "accounts": self.accounts}[resource]
        with self._lock:
            for i, item in enumerate(items):
                if item["id"] == str(record_id):
                    return items.pop(i)
        raise KeyError(f"No {resource[:-1]} with id {record_id}")

    def update_contact(self, contact_id, *, initiated_by: str = "admin", **fields) -> list[Delivery]:
        """Change a contact (REST field names: firstName, lastName, email, phone, orgname): `update`."""
        contact = self._contact(contact_id)
        with self._lock:
            contact.update({k: v for k, v in fields.items() if k in ("firstName", "lastName", "email", "phone",
                                                                        "orgname")})
            contact["udate"] = _iso(datetime.now(TZ))
        return self.fire("update", [("list", "0"), *self._contact_block(contact), *self._top_level(contact)],
                         initiated_by=initiated_by)

    def add_contact(self, email: str, *, first_name: str = "", last_name: str = "",
                    initiated_by: str = "admin") -> tuple[dict, list[Delivery]]:
        """A new contact, added by an admin without a list: `subscribe` with list 0 [GP-FIX]."""
        now = _iso(datetime.now(TZ))
        with self._lock:
            cid = str(max((_int(c.get("id"), 0) for c in self.contacts), default=0) + 1)
            contact = {"cdate": now, "udate": now, "email": email, "phone": "", "firstName": first_name,
                       "lastName": last_name, "orgid": "0", "orgname": "", "id": cid, "deleted": "0"}
            self.contacts.append(contact)
        return contact, self.fire("subscribe", [("list", "0"), *self._contact_block(contact),
                                                *self._top_level(contact)], initiated_by=initiated_by)

    def unsubscribe_contact(self, contact_id, *, list_id: str = "1", initiated_by: str = "public") -> list[Delivery]:
        """`unsubscribe`: an admin's names its list in `list` [GP-FIX]; a contact's own (public) one in
        `list[][id]`, PHP's append brackets [AA]."""
        contact = self._contact(contact_id)
        named = [("list[][id]", str(list_id))] if initiated_by == "public" else [("list", str(list_id))]
        return self.fire("unsubscribe", [*named, *self._contact_block(contact), *self._top_level(contact)],
                         initiated_by=initiated_by)

    def tag_contact(self, contact_id, tag: str, *, remove: bool = False,
                    initiated_by: str = "admin") -> list[Delivery]:
        """Add (or remove) a tag: `contact_tag_added`/`_removed` with the tag's name in `tag` [AP]."""
        contact = self._contact(contact_id)
        with self._lock:
            self._set_tag(str(contact["id"]), tag, not remove)
        kind = "contact_tag_removed" if remove else "contact_tag_added"
        return self.fire(kind, [("list", "0"), *self._contact_block(contact), *self._top_level(contact),
                                ("tag", tag)], initiated_by=initiated_by)

    def update_deal(self, deal_id, *, initiated_by: str = "admin", **fields) -> list[Delivery]:
        """Change a deal (REST names: title, value in cents, stage, status, owner): `deal_update` with
        `updated_fields` naming what changed (REST names, plus mdate) [GP-FIX]."""
        deal = self._deal(deal_id)
        allowed = ("title", "value", "stage", "status", "owner", "currency")
        with self._lock:
            changed = [k for k in allowed if k in fields and str(fields[k]) != str(deal.get(k))]
            deal.update({k: str(fields[k]) for k in allowed if k in fields})
            if "stage" in fields:
                deal["group"] = next((s["group"] for s in self.deal_stages if s["id"] == str(fields["stage"])),
                                     deal.get("group"))
            deal["mdate"] = _iso(datetime.now(TZ))
            self._indexes.clear()     # an edit inside a deal: its value counts in the kept meta.currencies
        return self.fire("deal_update", [("list", "0"), *self._deal_block(deal, [*changed, "mdate"])],
                         initiated_by=initiated_by)

    def add_deal(self, title: str, *, value: int = 0, contact_id=None, stage: str = "1",
                 initiated_by: str = "admin") -> tuple[dict, list[Delivery]]:
        """A new deal (`value` in cents, as AC's REST API): `deal_add`."""
        now = _iso(datetime.now(TZ))
        with self._lock:
            did = str(max((_int(d.get("id"), 0) for d in self.deals), default=0) + 1)
            group = next((s["group"] for s in self.deal_stages if s["id"] == str(stage)), "1")
            deal = {"id": did, "title": title, "value": str(value), "currency": "usd", "stage": str(stage),
                    "group": group, "owner": "1", "contact": str(contact_id) if contact_id else None,
                    "status": "0", "cdate": now, "mdate": now, "isDisabled": False, "account": None}
            self.deals.append(deal)
        return deal, self.fire("deal_add", [("list", "0"), *self._deal_block(deal)], initiated_by=initiated_by)

    def update_account(self, account_id, *, initiated_by: str = "admin", **fields) -> list[Delivery]:
        """Change an account (REST names: name, accountUrl): `account_update` with `updated_fields`, to the
        webhooks that registered it [AP]."""
        account = next((a for a in self.accounts if str(a.get("id")) == str(account_id)), None)
        if account is None:
            raise KeyError(f"no account {account_id}")
        with self._lock:
            changed = [k for k in ("name", "accountUrl") if k in fields and fields[k] != account.get(k)]
            account.update({k: fields[k] for k in ("name", "accountUrl") if k in fields})
            account["updatedTimestamp"] = _iso(datetime.now(TZ))
        names = {"accountUrl": "account_url"}
        return self.fire("account_update", [("list", "0"), *self._account_block(
            account, [names.get(k, k) for k in changed])], initiated_by=initiated_by)

    # -- the same over HTTP, for curl (`/_sandbox/...`; no key: the sandbox is loopback only)
    def _control(self, method: str, rel: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        try:
            data = json.loads(body or b"{}")
            if not isinstance(data, dict):
                raise ValueError
        except ValueError:
            return 400, {"Content-Type": JSON}, b'{"message": "Body must be a JSON object"}'
        parts = rel[len(CONTROL_PREFIX):].strip("/").split("/")
        try:
            if parts == ["deliveries"] and method == "GET":
                out = [{"webhook_id": d.webhook_id, "type": d.type, "status": d.status,
                        "elapsed_ms": round(d.elapsed * 1000, 1)} for d in self.deliveries[-50:]]
                return 200, {"Content-Type": JSON}, json.dumps({"deliveries": out}).encode()
            if len(parts) == 2 and parts[0] in ("contacts", "deals", "accounts") and method == "DELETE":
                return self._controlled({parts[0][:-1]: self.delete(parts[0], parts[1])}, [])
            controls = {"contacts": self._contact_control, "deals": self._deal_control}
            answer = controls[parts[0]](method, parts, data) if parts[0] in controls else None
            if answer is not None:
                return answer
        except KeyError as exc:
            return 404, {"Content-Type": JSON}, json.dumps({"message": str(exc.args[0])}).encode()
        return 404, {"Content-Type": JSON}, b'{"message": "Unknown sandbox control"}'

    def _contact_control(self, method: str, parts: list[str], data: dict) -> tuple[int, dict[str, str], bytes] | None:
        """`/_sandbox/contacts...`: add, update, tag or untag a contact (None: no such control)."""
        if parts == ["contacts"] and method == "POST":
            contact, sent = self.add_contact(str(data.get("email") or "new@example.com"),
                                             first_name=str(data.get("firstName") or ""),
                                             last_name=str(data.get("lastName") or ""))
            return self._controlled({"contact": contact}, sent)
        if len(parts) == 2 and method in ("PATCH", "PUT", "POST"):
            return self._controlled({"contact": self._contact(parts[1])}, self.update_contact(parts[1], **data))
        if len(parts) == 3 and parts[2] == "tags" and method in ("POST", "DELETE"):
            sent = self.tag_contact(parts[1], str(data.get("tag") or "vip"), remove=method == "DELETE")
            return self._controlled({"contact": self._contact(parts[1])}, sent)
        return None

    def _deal_control(self, method: str, parts: list[str], data: dict) -> tuple[int, dict[str, str], bytes] | None:
        """`/_sandbox/deals...`: add or update a deal (None: no such control)."""
        if parts == ["deals"] and method == "POST":
            deal, sent = self.add_deal(str(data.get("title") or "New deal"), value=_int(data.get("value"), 0),
                                       contact_id=data.get("contact"), stage=str(data.get("stage") or "1"))
            return self._controlled({"deal": deal}, sent)
        if len(parts) == 2 and method in ("PATCH", "PUT", "POST"):
            return self._controlled({"deal": self._deal(parts[1])}, self.update_deal(parts[1], **data))
        return None

    @staticmethod
    def _controlled(payload: dict, sent: list[Delivery]) -> tuple[int, dict[str, str], bytes]:
        return 200, {"Content-Type": JSON}, json.dumps({**payload, "deliveries": len(sent)}).encode()


class ACSandbox(WebhooksMixin):
    """ActiveCampaign v3 stand-in; see the module docstring."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, api_keys=("sandbox-key",),
                 rate_limit: float | None = 5.0, seed: int = 7, contacts: int = 120, deals: int = 60,
                 accounts: int = 25, api_prefix: str = "/api/3", retry_after: int = 1,
                 answer_time: tuple[float, float, float] = (0.0, 0.0, 0.0),
                 ignored_includes: tuple[tuple[str, str], ...] = ()):
        self.host, self._port, self.seed, self.rate_limit = host, port, seed, rate_limit
        self.retry_after = retry_after   # AC's documented example is 30 (rate-limits page); tests set it
        self._denied: dict[str | None, set[str]] = {}
        self._initial_answer_time = tuple(answer_time)
        self.answer_time(*answer_time)
        self.api_prefix = "/" + api_prefix.strip("/") if api_prefix.strip("/") else ""
        self._initial_ignored = tuple((self._rel(path), name) for path, name in ignored_includes)
        self._ignored: set[tuple[str, str]] = set(self._initial_ignored)
        self._initial_keys = tuple(api_keys)
        self._keys = set(api_keys)
        self.requests: list[RecordedRequest] = []
        self.connections = 0     # TCP connections accepted (keep-alive: a client's calls share few)
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []
        self._window: list[float] = []
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._sizes = {"contacts": contacts, "deals": deals, "accounts": accounts}
        self._initial_sizes = dict(self._sizes)
        self._indexes: dict[tuple[int, Callable], tuple[tuple, object]] = {}
        self._init_webhooks()
        self.generate()

    # -- lifecycle
    def start(self) -> ACSandbox:
        if self._server is None:
            self._stopping.clear()
            self._server = _Server((self.host, self._port), _Handler)
            self._server.sandbox = self
            self._port = self._server.server_address[1]  # a restart after stop() reuses the same port
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name=f"ac-sandbox-{self._port}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        self._stop_webhooks()
        if server is not None:
            self._stopping.set()  # wakes handlers sleeping in an injected delay
            server.shutdown()
            server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ACSandbox:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self._port}"

    # -- test controls
    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self.requests.clear()
            self.connections = 0
            self._window.clear()
            self._keys = set(self._initial_keys)
            self._denied.clear()
            self._ignored = set(self._initial_ignored)
        self._stop_webhooks()
        self._init_webhooks()
        self.answer_time(*self._initial_answer_time)
        self._sizes = dict(self._initial_sizes)   # a test's generate(deals=350) must not outlive it
        self.generate()

    def inject(self, status: int | None = None, *, times: int = 1, path: str | None = None,
               retry_after: float | None = None, delay: float = 0.0, body: bytes | None = None,
               content_type: str | None = JSON, location: str | None = None) -> None:
        if times < 1:
            raise ValueError("times must be >= 1")
        fault = _Fault(status, times, None if path is None else self._rel(path), retry_after, delay, body,
                       content_type, location)
        with self._lock:
            self._faults.append(fault)

    def answer_time(self, fixed: float = 0.0, per_record: float = 0.0, jitter: float = 0.0) -> None:
        """How long an authorised answer takes (see the module docstring); all 0: at once."""
        if fixed < 0 or per_record < 0 or not 0 <= jitter <= 1:
            raise ValueError("fixed and per_record must be >= 0, jitter within 0..1")
        self._answer_time = (float(fixed), float(per_record), float(jitter))
        self._answer_rng = random.Random(f"{self.seed}:answer-time")

    def _take_time(self, records: int) -> None:
        fixed, per_record, jitter = self._answer_time
        seconds = fixed + per_record * records
        if seconds > 0:
            with self._lock:
                spread = self._answer_rng.uniform(-jitter, jitter)
            self._stopping.wait(seconds * (1 + spread))

    def count(self, path: str | None = None) -> int:
        with self._lock:
            log = list(self.requests)
        if path is None:
            return len(log)
        rel = self._rel(path)
        return sum(1 for r in log if r.path == rel)

    def deny(self, path: str, api_key: str | None = None) -> None:
        """The user group of `api_key` (every key when None) lacks the permission `path` needs: AC answers
        403 {"errors":[{"status":403,"title":"Forbidden","detail":"You do not have permission to view
        deals."}]} (the doc declares that example text/plain; so does this)."""
        with self._lock:
            self._denied.setdefault(api_key, set()).add(self._rel(path))

    def ignore_include(self, path: str, name: str) -> None:
        """Make `path` ignore `include=<name>` as AC ignores an include it does not know (its answer then has no
        top-level `<name>` and no `<name>` ids on records): e.g. ``ignore_include("/deals",
        "dealCustomFieldData")``, the sideload only one public client shows and AC's deal reference does not
        document (docs/ac-behaviour.md). ``reset()`` restores the constructor's ``ignored_includes``."""
        with self._lock:
            self._ignored.add((self._rel(path), name))

    def _includes(self, rel: str, q: dict[str, str]) -> set[str]:
        """The `include=` names of a request that `rel` honours (the switch above may drop some)."""
        with self._lock:
            ignored = {name for path, name in self._ignored if path == rel}
        return {part.strip() for part in q.get("include", "").split(",") if part.strip()} - ignored

    def add_key(self, api_key: str) -> None:
        with self._lock:
            self._keys.add(api_key)

    def remove_key(self, api_key: str) -> None:
        with self._lock:
            self._keys.discard(api_key)

    def generate(self, *, contacts: int | None = None, deals: int | None = None,
                 accounts: int | None = None) -> None:
        for name, size in (("contacts", contacts), ("deals", deals), ("accounts", accounts)):
            if size is not None:
                if size < 0:
                    raise ValueError(f"{name} must be >= 0")
                self._sizes[name] = size
        link = LINK_HOST + self.api_prefix
        accounts_ = _gen_accounts(random.Random(f"{self.seed}:accounts"), self._sizes["accounts"], link)
        contacts_, status = _gen_contacts(random.Random(f"{self.seed}:contacts"), self._sizes["contacts"],
                                          accounts_, link)
        fields, values, options, rels = _gen_fields(random.Random(f"{self.seed}:fields"), contacts_, link,
                                                    random.Random(f"{self.seed}:laterFields"))
        groups, stages = _gen_pipelines(link)
        account_contacts = _gen_account_contacts(random.Random(f"{self.seed}:accountContacts"), contacts_, link)
        tags, lists, contact_tags, contact_lists = _gen_tags_and_lists(random.Random(f"{self.seed}:tags"),
                                                                       contacts_, link)
        deals = _gen_deals(random.Random(f"{self.seed}:deals"), self._sizes["deals"], contacts_, accounts_,
                           stages, link)
        deal_meta, deal_data = _gen_custom_fields(random.Random(f"{self.seed}:dealFields"), "deal", deals,
                                                  DEAL_FIELDS, link)
        account_meta, account_data = _gen_custom_fields(random.Random(f"{self.seed}:accountFields"), "account",
                                                        accounts_, ACCOUNT_FIELDS, link)
        data = {"accounts": accounts_, "contacts": contacts_, "fields": fields, "field_values": values,
                "field_options": options, "field_rels": rels,
                "deal_groups": groups, "deal_stages": stages, "deals": deals, "account_contacts": account_contacts,
                "tags": tags, "lists": lists, "contact_tags": contact_tags, "contact_lists": contact_lists,
                "users": _gen_users(link), "deal_custom_field_meta": deal_meta,
                "deal_custom_field_data": deal_data, "account_custom_field_meta": account_meta,
                "account_custom_field_data": account_data}
        with self._lock:
            self._contact_status = status
            for name, items in data.items():  # in place, so references held by tests stay valid
                if isinstance(getattr(self, name, None), list):
                    getattr(self, name)[:] = items
                else:
                    setattr(self, name, items)

    # -- request handling
    def _rel(self, path: str) -> str:
        if self.api_prefix and (path == self.api_prefix or path.startswith(self.api_prefix + "/")):
            path = path[len(self.api_prefix):]
        return path.rstrip("/") or "/"

    def _take_fault(self, rel: str) -> _Fault | None:
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.path is None or fault.path == rel:
                    fault.times -= 1
                    if fault.times <= 0:
                        del self._faults[i]
                    return fault
        return None

    def _take_slot(self) -> tuple[bool, int]:
        """Sliding one-second window shared by all keys (AC limits per account, not per key)."""
        now, limit = time.monotonic(), self.rate_limit
        with self._lock:
            self._window[:] = [t for t in self._window if now - t < 1.0]
            if limit is not None and len(self._window) >= limit:
                return False, 0
            self._window.append(now)
            return True, max(0, int(limit if limit is not None else 5) - len(self._window))

    def _answer(self, method: str, rel: str, query, key: str | None,
                body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
        if rel.startswith(CONTROL_PREFIX):
            return self._control(method, rel, body)
        fault = self._take_fault(rel)
        if fault is not None and fault.delay > 0:
            self._stopping.wait(fault.delay)
        if fault is not None and fault.status is not None:
            headers = {}
            if fault.retry_after is not None:
                ra = fault.retry_after
                headers["Retry-After"] = str(int(ra)) if float(ra).is_integer() else str(ra)
            if fault.location is not None:
                headers["Location"] = fault.location
            body, ctype = fault.body, fault.content_type
            if body is None and 300 <= fault.status < 400:
                body = LOGIN_PAGE.format(fault.location or "/").encode()
                ctype = "text/html" if ctype == JSON else ctype
            elif body is None:
                phrase = BaseHTTPRequestHandler.responses.get(fault.status, ("Error",))[0]
                body = json.dumps({"message": phrase}).encode()
            if ctype is not None:
                headers["Content-Type"] = ctype
            return fault.status, headers, body
        status, headers, reply = self._normal(method, rel, query, key, body)
        body = reply
        if fault is not None and fault.body is not None:
            headers = {k: v for k, v in headers.items() if k != "Content-Type"}
            if fault.content_type is not None:
                headers["Content-Type"] = fault.content_type
            body = fault.body
        return status, headers, body

    def _normal(self, method: str, rel: str, query, key: str | None,
                body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
        if key is None or key not in self._keys:
            return 403, {}, b'{"message": "Forbidden"}'  # AC sends this without a Content-Type
        ok, remaining = self._take_slot()
        limit = self.rate_limit if self.rate_limit is not None else 5
        headers = {"RateLimit-Limit": str(int(limit)) if float(limit).is_integer() else str(limit),
                   "RateLimit-Remaining": str(remaining)}
        if not ok:
            headers.update({"Retry-After": str(self.retry_after), "Content-Type": JSON})
            return 429, headers, b'{"message": "Too Many Requests"}'
        if (refusal := self._refusal(rel, key)) is not None:
            return 403, {**headers, "Content-Type": "text/plain"}, refusal
        if (webhooks := self._webhook_api(method, rel, query, body)) is not None:
            return webhooks[0], {**headers, **webhooks[1]}, webhooks[2]
        status, ctype, reply = self._read(method, rel, query)
        return status, {**headers, "Content-Type": ctype}, reply

    def _refusal(self, rel: str, key: str | None) -> bytes | None:
        """The permission 403's body when `deny()` covers this path (a single record: its collection's)."""
        with self._lock:
            denied = self._denied.get(None, set()) | self._denied.get(key, set())
        single = _single_path(rel)
        path = single[0] if single is not None and rel not in denied else rel
        if path not in denied:
            return None
        detail = f"You do not have permission to {PERMISSION_WORDS.get(path, 'view this')}."
        return json.dumps({"errors": [{"status": 403, "title": "Forbidden", "detail": detail}]}).encode()

    def _read(self, method: str, rel: str, query) -> tuple[int, str, bytes]:
        """(status, Content-Type, body) of a read: a collection, one record, or what AC answers otherwise."""
        route, single = _ROUTES.get(rel), _single_path(rel)
        if route is None and single is None:
            return _not_served(rel)
        if method not in ("GET", "HEAD"):
            return 405, JSON, b'{"message": "Method Not Allowed"}'
        if route is None:
            status, payload = self._single(*single)
            self._take_time(1)
            return status, JSON, json.dumps(payload).encode()
        payload = getattr(self, route)(dict(query), query)
        records = payload.get(rel.lstrip("/"))          # /contacts -> "contacts", /dealGroups -> "dealGroups"
        self._take_time(len(records) if isinstance(records, list) else 1)
        return 200, JSON, json.dumps(payload).encode()

    def _single(self, collection: str, rid: str, link: str | None) -> tuple[int, dict]:
        """GET /<collection>/<id>: `{"<singular>": {...}}` and what AC sends beside it, or AC's JSON 404; with
        a link (`/contacts/7/contactTags`) the record's related items, or the "not modelled" 404."""
        data, singular, entity = SINGLE_READS[collection]
        record = self._indexed(data, _by_key).get(rid)
        if record is None:
            return 404, {"message": f"No Result found for {entity} with id {rid}"}
        if link is not None:
            return self._linked(collection, rid, link)
        out = {singular: record}
        if collection == "/contacts":
            out = {**self._contact_sideloads(rid), **out}
        elif collection == "/fields":
            out = {**self._field_sideloads([record]), **out}
        return 200, out

    def _linked(self, collection: str, rid: str, link: str) -> tuple[int, dict]:
        """A record's link (the URLs in its `links`) for the relations the stand-in models (`LINKS`)."""
        if (collection, link) not in LINKS:
            return 404, {"message": f"The ActiveCampaign sandbox does not model {collection}/{{id}}/{link}"}
        data, owner, key = LINKS[(collection, link)]
        return 200, {key: [item for item in getattr(self, data) if str(item.get(owner)) == rid]}

    def _contact_sideloads(self, cid: str) -> dict:
        """What AC's "Retrieve a contact" example sends beside the contact [SPEC]: its list memberships, field
        values and deals; automations, contact data and geo data are not modelled here (empty)."""
        deals = [d for d in self.deals if d.get("contact") == cid]
        return {"contactAutomations": [], "contactData": [],
                "contactLists": self._indexed("contact_lists", _by_contact).get(cid, []),
                "deals": deals, "fieldValues": self._indexed("field_values", _by_contact).get(cid, []),
                "geoAddresses": [], "geoIps": []}

    # -- endpoints: (q = last value per name, ql = the query list in order) -> JSON payload
    def _root(self, q, ql) -> dict:
        """GET /api/3/ itself: Singer's tap (1.3.1, `check_api_token`) checks a key there and needs a 200, so
        real AC answers one; its body is not public (this sends an empty object)."""
        return {}

    def _users_me(self, q, ql) -> dict:
        links = {k: f"{LINK_HOST}{self.api_prefix}/users/1/{k}"
                 for k in ("lists", "userGroup", "dealGroupTotals", "dealGroupUsers", "configs")}
        user = {"username": "demo", "firstName": "Demo", "lastName": "User", "email": "demo@example.com"}
        return {"user": {**user, "phone": "", "signature": None, "links": links, "id": "1"}}

    def _contacts(self, q, ql) -> dict:
        items = self._contacts_in_id_range(q)
        for keep in [*_contact_text_filters(q, self._contact_status), *self._contact_memberships(q, ql)]:
            items = [c for c in items if keep(c)]
        items = _sorted(_dated(items, q, "cdate", "udate"), _orders(ql, CONTACT_ORDERS), CONTACT_ORDERS, by_id=True)
        limit, offset = _page(q)
        page = items[offset:offset + limit]
        out = {"scoreValues": [], "contacts": page,
               "meta": {"total": str(len(items)), "page_input": _page_input(q, ql, limit, offset)}}
        return self._with_contact_sideloads(out, q)

    def _contacts_in_id_range(self, q) -> list[dict]:
        """Contacts in id order within `id_greater`/`id_less`, from an index (a page of a 100,000-contact account
        costs this stand-in ~1 ms, not ~190 ms of scanning: the benchmarks measure the walk, not the stand-in)."""
        ids, rows = self._indexed("contacts", _by_id)
        first = bisect.bisect_right(ids, gt) if (gt := _int(q.get("id_greater"), -1)) >= 0 else 0
        end = bisect.bisect_left(ids, lt) if (lt := _int(q.get("id_less"), -1)) >= 0 else len(ids)
        return rows[first:end]

    def _contact_memberships(self, q, ql) -> list[Callable[[dict], bool]]:
        """One test per membership filter of /contacts (AC reference, list all contacts): on a list, with a tag,
        among `ids[]`, subscribed through a form, in a segment; automations (`seriesid`, `waitid`) hold nobody."""
        wanted: list[set[str]] = []
        if (listid := _int(q.get("listid"), 0)) > 0:
            wanted.append({m["contact"] for m in self.contact_lists if m["list"] == str(listid)})
        if (tagid := _int(q.get("tagid"), 0)) > 0:
            wanted.append({t["contact"] for t in self.contact_tags if t["tag"] == str(tagid)})
        if ids := {i.strip() for k, v in ql if k in ("ids", "ids[]") for i in v.split(",") if i.strip()}:
            wanted.append(ids)
        if (formid := _int(q.get("formid"), 0)) > 0:   # subscribed through that form (contactLists' `form`)
            wanted.append({m["contact"] for m in self.contact_lists if _int(m.get("form"), 0) == formid})
        if (segment := _int(q.get("segmentid"), 0)) > 0:
            wanted.append({t["contact"] for t in self.contact_tags if t["tag"] == SEGMENT_TAGS.get(segment)})
        if any(_int(q.get(name), 0) > 0 for name in UNMODELLED_MEMBERSHIPS):
            wanted.append(set())    # automations are not modelled here: no contact is in one
        return [lambda c, ids=ids: str(c.get("id")) in ids for ids in wanted]

    def _with_contact_sideloads(self, out: dict, q) -> dict:
        """`include=` sideloads (AC reference, "Side Loading"): a top-level collection per include, and on each
        record the ids of its items; an include AC does not know is ignored."""
        included = self._includes("/contacts", q)
        sources = {"fieldValues": self.field_values, "contactTags": self.contact_tags,
                   "contactLists": self.contact_lists}
        page = out["contacts"]
        for name in [n for n in sources if n in included]:
            of_contact = self._indexed(sources[name], _by_contact)
            out[name] = [item for c in page for item in of_contact.get(c.get("id"), ())]
            out["contacts"] = [{**c, name: [item["id"] for item in of_contact.get(c.get("id"), ())]}
                               for c in out["contacts"]]
        return out

    def _indexed(self, data: str | list[dict], build: Callable[[list[dict]], T]) -> T:
        """`build(list)` of a data list (by name or the list itself), kept until the list changes: its length or its
        first or last item (every edit this class makes, and appending, removing or replacing the list's items
        from a test; an edit inside an item keeps the index, which holds the same dicts, so an index must not
        derive from a field an edit may change: update_deal drops them all, for meta.currencies)."""
        items = getattr(self, data) if isinstance(data, str) else data
        mark = (id(items), len(items), id(items[0]) if items else None, id(items[-1]) if items else None)
        key = (id(items), build)
        with self._lock:
            kept = self._indexes.get(key)
        if kept is None or kept[0] != mark:
            kept = (mark, build(items))
            with self._lock:
                self._indexes[key] = kept
        return kept[1]

    def _fields(self, q, ql) -> dict:
        tag = q.get("filters[perstag]")
        items = [f for f in self.fields if not tag or f.get("perstag") == tag]
        limit, offset = _page(q)   # 20 without `limit`: AC's docs say 100, four public reports observe 20
        page = items[offset:offset + limit]
        return {**self._field_sideloads(page), "fields": page, "meta": {"total": str(len(items))}}

    def _field_sideloads(self, fields: list[dict]) -> dict:
        """`fieldOptions` and `fieldRels` of these fields, beside them as AC's /fields answers them [SPEC]."""
        wanted = {str(f.get("id")) for f in fields}
        return {"fieldOptions": [o for o in self.field_options if o.get("field") in wanted],
                "fieldRels": [r for r in self.field_rels if r.get("field") in wanted]}

    def _field_values(self, q, ql) -> dict:
        items = list(self.field_values)
        if q.get("filters[fieldid]"):
            items = [v for v in items if str(v.get("field")) == q["filters[fieldid]"].strip()]
        if q.get("filters[val]"):
            items = [v for v in items if str(v.get("value") or "").lower() == q["filters[val]"].lower()]
        limit, offset = _page(q)
        return {"fieldValues": items[offset:offset + limit], "meta": {"total": str(len(items))}}

    def _deals(self, q, ql) -> dict:
        # The orders a full export uses (none, orders[cdate]=ASC) come from an index kept until the deals change
        # (a page of 10,000 deals cost this stand-in ~55 ms of sorting and scanning). Sorting first and
        # filtering after gives the same list: every sort here is stable and ids are unique. Orders on fields an
        # edit may change in place (title, value) or on contacts are sorted per call.
        keys = self._deal_order_keys()
        orders = _orders(ql, keys)
        indexed = {(): _deals_by_id, (("cdate", False),): _deals_by_cdate}.get(tuple(orders))
        items = self._indexed("deals", indexed) if indexed else list(self.deals)
        for keep in self._deal_filters(q):
            items = [d for d in items if keep(d)]
        items = _dated(items, q, "cdate", "mdate")
        if not indexed:
            items = _sorted(items, orders, keys)
        currencies = self._indexed("deals", _currencies) if len(items) == len(self.deals) else _currencies(items)
        limit, offset = _page(q)
        page = items[offset:offset + limit]
        out = {"deals": page,
               "meta": {"currencies": {k: {"currency": k, "total": str(v["total"]), "value": str(v["value"])}
                                       for k, v in currencies.items()}, "total": len(items)}}
        if "dealCustomFieldData" in self._includes("/deals", q):
            out.update(self._deal_field_data(page))
        return out

    def _contact_of(self, deal: dict) -> dict:
        """A deal's primary contact ({} when none)."""
        return self._indexed("contacts", _by_key).get(deal.get("contact")) or {}

    def _deal_order_keys(self) -> dict[str, Callable[[dict], object]]:
        """AC's documented deal orders (AC reference, list all deals) as sort keys."""
        contact_of = self._contact_of
        return {"title": lambda d: str(d.get("title") or "").lower(),
                "value": lambda d: _int(d.get("value"), 0), "cdate": deal_created,
                "contact_name": lambda d: f"{contact_of(d).get('firstName') or ''} "
                                          f"{contact_of(d).get('lastName') or ''}".strip().lower(),
                "contact_orgname": lambda d: str(contact_of(d).get("orgname") or "").lower()}

    def _deal_filters(self, q) -> list[Callable[[dict], bool]]:
        """One test per deal filter of the request (AC reference, list all deals; the dates are `_dated`'s)."""
        keep: list[Callable[[dict], bool]] = []
        if title := q.get("filters[title]", "").lower():
            keep.append(lambda d: _contains(title, d.get("title")))
        if q.get("filters[search]"):
            keep.append(self._deal_search(q["filters[search]"], q.get("filters[search_field]", "all")))
        for name in ("stage", "group", "status", "owner"):
            if (wanted := _int(q.get(f"filters[{name}]"), -1)) >= 0:
                keep.append(lambda d, n=name, w=wanted: d.get(n) is not None and _int(d.get(n), -2) == w)
        if (tag := _int(q.get("filters[tag]"), 0)) > 0:
            tagged = {t["contact"] for t in self.contact_tags if t["tag"] == str(tag)}
            keep.append(lambda d: d.get("contact") in tagged)
        return keep + _value_bounds(q)

    def _deal_search(self, needle: str, where: str) -> Callable[[dict], bool]:
        """AC reference (deal parameters): search_field all = title, contact and org; title; contact = the
        primary contact's first and last name; org = the primary contact's organisation name. Without
        search_field AC's choice is undocumented; this stand-in searches all."""
        contact_of, needle, where = self._contact_of, needle.strip().lower(), where.strip()
        hay = {"title": lambda d: [d.get("title")],
               "contact": lambda d: [" ".join(str(contact_of(d).get(k) or "") for k in ("firstName", "lastName"))],
               "org": lambda d: [contact_of(d).get("orgname")]}
        fields = [hay[where]] if where in hay else list(hay.values())
        return lambda d: any(_contains(needle, *f(d)) for f in fields)

    def _deal_field_data(self, page: list[dict]) -> dict:
        """`include=dealCustomFieldData`: the page's values in the data's order, and their ids on each deal;
        observed, not documented (lib-go-activecampaign Deal.go, DealIncludeFieldValues); joined on dealId."""
        wanted = {_int(d.get("id"), 0) for d in page if "group" in d}
        of_deal = self._indexed("deal_custom_field_data", _data_by_deal)
        values = [v for _, v in sorted((pair for w in wanted for pair in of_deal.get(w, ())), key=lambda p: p[0])]
        by_deal: dict[int, list[str]] = {}
        for v in values:
            by_deal.setdefault(v["dealId"], []).append(v["id"])
        return {"dealCustomFieldData": values,
                "deals": [{**d, "dealCustomFieldData": by_deal.get(_int(d["id"], 0), [])} if "group" in d else d
                          for d in page]}

    def _deal_groups(self, q, ql) -> dict:
        limit, offset = _page(q)
        groups = list(self.deal_groups)
        return {"dealGroups": groups[offset:offset + limit], "meta": {"total": str(len(groups))}}

    def _deal_stages(self, q, ql) -> dict:
        items = list(self.deal_stages)
        if (group := _int(q.get("filters[d_groupid]"), -1)) >= 0:
            items = [s for s in items if _int(s.get("group"), -2) == group]
        limit, offset = _page(q)
        return {"dealStages": items[offset:offset + limit], "meta": {"total": str(len(items))}}

    def _accounts(self, q, ql) -> dict:
        items = list(self.accounts)
        if q.get("search"):
            items = [a for a in items if _contains(q["search"].strip().lower(), a.get("name"))]
        limit, offset = _page(q)
        page = items[offset:offset + limit]
        if q.get("count_deals", "").strip().lower() in ("true", "1"):
            contacts = self._indexed("account_contacts", _per_account)
            deals = self._indexed("deals", _per_account)
            page = [{**a, "contactCount": str(contacts.get(a.get("id"), 0)),
                     "dealCount": str(deals.get(a.get("id"), 0))} for a in page]
        return {"accounts": page, "meta": {"total": str(len(items))}}

    def _listed(self, items: list[dict], collection: str, q, total_as_int: bool = False) -> dict:
        limit, offset = _page(q)
        return {collection: items[offset:offset + limit],
                "meta": {"total": len(items) if total_as_int else str(len(items))}}

    def _tags(self, q, ql) -> dict:
        items = [t for t in self.tags if not q.get("search") or _contains(q["search"].lower(), t["tag"])]
        term = q.get("search", "").strip().lower()
        for op, test in TAG_SEARCH.items():   # filters[search][<op>]=<value>, on the tag's name
            if value := q.get(f"filters[search][{op}]", "").strip().lower():
                items = [t for t in items if test(str(t.get("tag") or "").lower(), value)]
                term = term or value
        order = q.get("orders[search]", "").strip().lower()
        if order in ("asc", "desc"):
            items.sort(key=lambda t: str(t.get("tag") or "").lower(), reverse=order == "desc")
        elif order == "weight":
            items.sort(key=lambda t: _weight(term, t.get("tag")))
        return self._listed(items, "tags", q)

    def _lists(self, q, ql) -> dict:   # "The number of lists returned defaults to 20" (AC reference)
        items = list(self.lists)
        if name := q.get("filters[name]", "").strip().lower():    # "like the provided value" [AC-MCP]
            items = [x for x in items if name in str(x.get("name") or "").lower()]
        if wanted := q.get("filters[id]", "").strip():
            items = [x for x in items if str(x.get("id")) == wanted]
        channel = q.get("filters[channel]", "").strip().lower() or "email"   # "Defaults to email" [AC-MCP]
        if channel != "all":
            items = [x for x in items if x.get("channel", "email") == channel]
        users = {u.strip() for k, v in ql if k in LIST_USER_FILTERS for u in v.split(",") if u.strip()}
        if users:
            items = [x for x in items if str(x.get("userid")) in users]
        subscribers = self._indexed("contact_lists", _active_per_list)
        weighted = q.get("orders[name]", "").strip().lower() == "weight"   # exact, starts with, others; by name
        keys = {"name": (lambda x: (_weight(name, x.get("name")), str(x.get("name") or "").lower())) if weighted
                else (lambda x: str(x.get("name") or "").lower()),
                "id": lambda x: _int(x.get("id"), 0), "channel": lambda x: str(x.get("channel") or ""),
                "userid": lambda x: _int(x.get("userid"), 0),
                "created_timestamp": lambda x: _ts(x.get("created_timestamp")),
                "active_subscribers": lambda x: subscribers.get(str(x.get("id")), 0)}
        return self._listed(_sorted(items, _orders(ql, keys), keys), "lists", q)

    def _users(self, q, ql) -> dict:
        return self._listed(list(self.users), "users", q)

    def _contact_tags(self, q, ql) -> dict:      # Singer's contact_tags stream reads the whole collection
        return self._listed(list(self.contact_tags), "contactTags", q)

    def _contact_lists(self, q, ql) -> dict:     # Singer's contact_lists stream
        return self._listed(list(self.contact_lists), "contactLists", q)

    def _account_contacts(self, q, ql) -> dict:
        wanted = {k: q[f"filters[{k}]"].strip() for k in ("contact", "account") if q.get(f"filters[{k}]")}
        items = [x for x in self.account_contacts if all(x[k] == v for k, v in wanted.items())]
        return self._listed(items, "accountContacts", q)

    def _deal_custom_field_meta(self, q, ql) -> dict:
        return self._listed(list(self.deal_custom_field_meta), "dealCustomFieldMeta", q)

    def _deal_custom_field_data(self, q, ql) -> dict:   # filters[dealId] ("Id uses a capital I")
        wanted = _int(q.get("filters[dealId]"), 0)
        items = [v for v in self.deal_custom_field_data if not wanted or v["dealId"] == wanted]
        return self._listed(items, "dealCustomFieldData", q)

    def _account_custom_field_meta(self, q, ql) -> dict:
        return self._listed(list(self.account_custom_field_meta), "accountCustomFieldMeta", q)

    def _account_custom_field_data(self, q, ql) -> dict:   # filters[customerAccountId]; items carry accountId
        wanted = _int(q.get("filters[customerAccountId]"), 0)
        items = [v for v in self.account_custom_field_data if not wanted or v["accountId"] == wanted]
        return self._listed(items, "accountCustomFieldData", q)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the ActiveCampaign v3 sandbox in the foreground.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8010)
    parser.add_argument("--api-key", action="append", dest="api_keys", help="valid key (repeatable)")
    parser.add_argument("--rate-limit", type=float, default=5.0, help="requests per second; 0 = unlimited")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--contacts", type=int, default=120)
    parser.add_argument("--deals", type=int, default=60)
    parser.add_argument("--accounts", type=int, default=25)
    parser.add_argument("--answer-ms", type=float, default=0.0, help="fixed part of every answer's time")
    parser.add_argument("--per-record-ms", type=float, default=0.0, help="answer time per record returned")
    parser.add_argument("--jitter", type=float, default=0.0, help="+/- fraction of the answer time (0..1)")
    parser.add_argument("--ignore-include", action="append", default=[], metavar="PATH:NAME",
                        help="answer PATH as if AC did not know include=NAME, e.g. /deals:dealCustomFieldData")
    args = parser.parse_args(argv)
    keys = tuple(args.api_keys or ("sandbox-key",))
    ignored = []
    for spec in args.ignore_include:
        path, sep, name = spec.partition(":")
        if not sep or not path or not name:
            parser.error(f"--ignore-include wants PATH:NAME, got {spec!r}")
        ignored.append((path, name))
    sandbox = ACSandbox(host=args.host, port=args.port, api_keys=keys, rate_limit=args.rate_limit or None,
                        seed=args.seed, contacts=args.contacts, deals=args.deals, accounts=args.accounts,
                        answer_time=(args.answer_ms / 1000, args.per_record_ms / 1000, args.jitter),
                        ignored_includes=tuple(ignored))
    sandbox.start()
    print(f"ActiveCampaign sandbox: {sandbox.base_url}  (API prefix {sandbox.api_prefix})", flush=True)
    print(f"API key: {keys[0]}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()


if __name__ == "__main__":
    main()
