"""JSON on a warm page export: parsing AC's answer and encoding the response, json against orjson (the real-latency
round, docs/decisions.md 39). Not a test: it reports.

    .venv/bin/python benchmarks/bench_json.py [--runs 2000]

The AC answer is the stand-in's `/contacts?limit=20&include=fieldValues,contactTags,contactLists` (what a warm
contacts page asks AC for); the response is that page enriched as the export route returns it. Medians of
`--runs` calls each, in microseconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "common")]

import orjson  # noqa: E402

from devstack.ac_sandbox import ACSandbox  # noqa: E402


def median_us(call, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1e6, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()
    from acexport.api import encode
    from acexport.query import pagination

    sandbox = ACSandbox(contacts=600, deals=10, accounts=10)
    query = {"limit": "20", "offset": "0", "include": "fieldValues,contactTags,contactLists"}
    answer = json.dumps(sandbox._contacts(query, list(query.items()))).encode()
    records = json.loads(answer)["contacts"]
    response = {"success": True, "message": "SUCCESS", "data": records, "pagination": pagination(1, 20, 600)}
    report = {
        "ac_answer_bytes": len(answer),
        "parse_json_us": median_us(lambda: json.loads(answer), args.runs),
        "parse_orjson_us": median_us(lambda: orjson.loads(answer), args.runs),
        "response_bytes": len(encode(response).encode()),
        "encode_json_us": median_us(lambda: json.dumps(response, separators=(",", ":")), args.runs),
        "encode_orjson_us (acexport.api.encode)": median_us(lambda: encode(response), args.runs),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
