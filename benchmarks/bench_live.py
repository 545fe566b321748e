"""Live changes in the local stack: delivery to feed latency, receiver time, a burst. Not a test: it reports.

    .venv/bin/python benchmarks/bench_live.py            # about a minute
    .venv/bin/python benchmarks/bench_live.py --changes 100 --burst 1000 --burst-seconds 10

The whole stack runs in this process (`devstack.stack.LocalStack`: the local API Gateway serving
template.yaml, nx-27017, moto's EventBridge, the AC sandbox). A tenant connects and turns live changes on
with PUT /live, so the sandbox holds a webhook pointing at the local receiver route. Then:

1. latency: N contact changes, one after another, each made in the sandbox (which posts AC's form
   delivery to the receiver, as AC would); the clock runs from the moment the sandbox starts its POST to
   the moment GET /changes (polled every 5 ms by a reader holding the previous next_cursor) returns it;
2. receiver time: the sandbox's POST round trips of those deliveries (local gateway + handler), and the
   handler alone, invoked as the Lambda runtime invokes it (warm), on 200 more deliveries, against a baseline
   measured request by request in the same run: the Mongo commands and the EventBridge PutEvents it made, sent
   again with plain clients (its ratio is what the receiver adds: parsing, checks, logs, metrics);
3. burst: B distinct changes fired at an even pace over S seconds (the sandbox posts with
   `delivery_concurrency` = 8 connections), then B/10 of them delivered a second time (AC's "at least
   once"); checked: every answer 2xx (no 5xx), B changes stored, the feed read in full returns each once,
   B events on the bus.

Locally each function is one container (calls are serialised, devstack/apigw.py): in AWS, Lambda runs
receivers side by side. Results are printed and written to benchmarks/last_live.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "common")]

BASE = "/v1/integrations/activecampaign"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(values: list[float]) -> dict:
    return {"median_ms": round(statistics.median(values) * 1000, 1), "p95_ms": round(pct(values, 0.95) * 1000, 1),
            "max_ms": round(max(values) * 1000, 1), "n": len(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--burst-seconds", type=float, default=10.0)
    args = parser.parse_args()

    import boto3
    import requests
    from acexport import caches, db
    from acexport.jobs import aws
    from baseline import MongoCommands, replay
    from pymongo import monitoring

    from devstack.stack import LocalStack, mint_token

    with LocalStack() as stack:
        sandbox = stack.sandbox
        sandbox.rate_limit = None
        http = requests.Session()
        headers = {"Authorization": f"Bearer {mint_token('bench-user', 'bench-account')}"}
        api = stack.api_url + BASE
        assert http.post(f"{api}/auth", headers=headers, timeout=30,
                         json={"api_key": "sandbox-key", "base_url": sandbox.base_url}).status_code == 200
        assert http.put(f"{api}/live", headers=headers, timeout=30).status_code == 200
        contacts = [c["id"] for c in sandbox.contacts]
        cursor = "0"

        def read(after: str, limit: int = 250) -> dict:
            reply = http.get(f"{api}/changes?after={after}&limit={limit}", headers=headers, timeout=30)
            assert reply.status_code == 200, reply.text
            return reply.json()

        # 1. latency, one change at a time
        latencies, round_trips = [], []
        for n in range(args.changes):
            (delivery,) = sandbox.update_contact(contacts[n % len(contacts)], firstName=f"Latency{n}")
            while True:
                page = read(cursor, 10)
                if page["data"]:
                    seen = time.monotonic()
                    break
                time.sleep(0.005)
            sandbox.wait_for_deliveries()
            assert [c["record"]["firstName"] for c in page["data"]] == [f"Latency{n}"], page
            cursor = page["next_cursor"]
            latencies.append(seen - delivery.sent_at)
            round_trips.append(delivery.elapsed)

        # 2. the receiver handler alone (as the Lambda runtime calls it, warm), and request by request its
        #    baseline: the same Mongo commands and the same EventBridge PutEvents, sent again with plain clients
        (template,) = sandbox.update_contact(contacts[0], firstName="Template")
        sandbox.wait_for_deliveries()
        event = json.loads((ROOT / "events" / "hooks_receiver.json").read_text())
        secret = template.url.rsplit("/", 1)[1]
        event["pathParameters"] = {"secret": secret}
        event["rawPath"] = event["requestContext"]["http"]["path"] = f"{BASE}/hooks/{secret}"
        commands = MongoCommands()
        monitoring.register(commands)
        caches.reset()                         # a container whose Mongo client carries the listener
        event["body"] = template.body.decode().replace("Template", "Warm")
        assert stack.api.invoke("HooksReceiverFunction", event)["statusCode"] == 200
        events_client, puts = aws.client("events"), []
        real_put = events_client.put_events

        def put(**kwargs):
            puts.append(kwargs)
            return real_put(**kwargs)

        events_client.put_events = put
        plain_events = boto3.client("events")
        handler_times, baselines = [], []
        for n in range(200):
            event["body"] = template.body.decode().replace("Template", f"Handler{n}")
            commands.recording, puts[:] = [], []
            started = time.perf_counter()
            reply = stack.api.invoke("HooksReceiverFunction", event)
            handler_times.append(time.perf_counter() - started)
            assert reply["statusCode"] == 200, reply
            recorded, commands.recording = commands.recording, None
            started = time.perf_counter()
            replay(db.client(), recorded)
            for kwargs in list(puts):
                plain_events.put_events(**kwargs)
            baselines.append(time.perf_counter() - started)
        events_client.put_events = real_put
        cursor = read(cursor, 250)["next_cursor"]
        while (page := read(cursor))["data"]:
            cursor = page["next_cursor"]

        # 3. the burst
        published_before = len([e for e in stack.events.published() if e["detail-type"] == "ActiveCampaign Change"])
        sent, gap = [], args.burst_seconds / args.burst
        started = time.monotonic()
        for n in range(args.burst):
            due = started + n * gap
            if (wait := due - time.monotonic()) > 0:
                time.sleep(wait)
            sent += sandbox.update_contact(contacts[n % len(contacts)], firstName=f"Burst{n}")
        fired_in = time.monotonic() - started
        again = [sandbox.redeliver(d) for d in sent[:: 10]]
        sandbox.wait_for_deliveries(timeout=300)
        answered_in = max(d.sent_at + d.elapsed for d in sent + again) - started
        statuses = Counter(d.status for d in sent + again)
        burst_ids: list[str] = []
        while (page := read(cursor))["data"]:
            burst_ids += [c["id"] for c in page["data"] if c["record"].get("firstName", "").startswith("Burst")]
            cursor = page["next_cursor"]
        names = Counter()
        for page_cursor in ("0",):
            after = page_cursor
            while (page := read(after))["data"]:
                names.update(c["record"]["firstName"] for c in page["data"]
                             if c["record"].get("firstName", "").startswith("Burst"))
                after = page["next_cursor"]
        events = [e for e in stack.events.published() if e["detail-type"] == "ActiveCampaign Change"]
        result = {
            "latency_delivery_to_feed": ms(latencies),
            "receiver_round_trip_http": ms(round_trips),
            "receiver_handler_warm": ms(handler_times),
            "receiver_baseline": {**ms(baselines), "what": "the same Mongo commands and PutEvents, plain clients",
                                  "ratio": round(statistics.median(handler_times) / statistics.median(baselines), 3)},
            "burst": {
                "deliveries": len(sent), "redelivered": len(again), "fired_in_s": round(fired_in, 2),
                "all_answered_in_s": round(answered_in, 2), "statuses": dict(statuses),
                "stored_changes_read_back": len(burst_ids), "distinct_in_feed": len(set(burst_ids)),
                "names_each_once": len(names) == args.burst and set(names.values()) == {1},
                "events_published": len(events) - published_before,
                "receiver_round_trip_http": ms([d.elapsed for d in sent + again]),
            },
        }
    print(json.dumps(result, indent=2))
    (ROOT / "benchmarks" / "last_live.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
