"""singer-io's tap-activecampaign, one sync per stream, its RECORD messages counted.

Runs inside the client's venv: python run_singer.py BASE_URL API_KEY NOT_MODELLED_JSON. One line changed: the
tap refuses an `api_url` that is not https or resolves to a private address (`client.is_api_url_valid`, a
guard for its hosted service), and the sandbox is plain HTTP on loopback, so that check is replaced by one
that accepts it. Everything else (its key check on GET /api/3/, paging, rate limit, transforms) runs as
shipped.
"""

import contextlib
import io
import json
import sys

import singer
from tap_activecampaign import client as tap_client
from tap_activecampaign.discover import discover
from tap_activecampaign.streams import STREAMS, SUB_STREAMS
from tap_activecampaign.sync import sync

BASE, KEY, NOT_MODELLED = sys.argv[1], sys.argv[2], set(json.loads(sys.argv[3]))
tap_client.is_api_url_valid = lambda api_url: True   # the one change (see the docstring)
CONFIG = {"api_url": BASE, "api_token": KEY, "start_date": "2019-01-01T00:00:00Z",
          "user_agent": "tap-activecampaign <sandbox@example.com>", "request_timeout": 30}


def select(catalog, name):
    for stream in catalog.streams:
        for entry in stream.metadata:
            if not entry["breadcrumb"]:
                entry["metadata"]["selected"] = stream.tap_stream_id == name
    return catalog


def run(name):
    out = io.StringIO()
    with tap_client.ActiveCampaignClient(BASE, KEY, CONFIG["user_agent"], 30) as ac, \
            contextlib.redirect_stdout(out):
        sync(client=ac, config=CONFIG, catalog=select(discover(), name), state={})
    counts = {}
    for line in out.getvalue().splitlines():
        message = json.loads(line)
        if message.get("type") == "RECORD":
            counts[message["stream"]] = counts.get(message["stream"], 0) + 1
    return counts


singer.get_logger().setLevel("ERROR")
rows = []
for name, stream in sorted(STREAMS.items()):
    if name in SUB_STREAMS.values():
        continue          # synced by its parent
    path = stream.path.split("/")[0]
    try:
        counts = run(name)
        rows.append({"name": name, "path": f"/{stream.path}", "outcome": "ok",
                     "detail": f"{counts.get(name, 0)} records"})
    except Exception as exc:
        outcome = "not modelled" if path in NOT_MODELLED else "FAILED"
        rows.append({"name": name, "path": f"/{stream.path}", "outcome": outcome,
                     "detail": f"{type(exc).__name__}: {exc}"[:110]})
print(json.dumps(rows))
