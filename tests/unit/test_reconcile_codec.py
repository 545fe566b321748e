"""The reconcile's id sets (acexport/reconcile/codec.py) and the schedule's spread (service.slot)."""

from __future__ import annotations

import random
import zlib

import pytest
from acexport.reconcile import codec, service


def test_ids_round_trip_sorted_and_distinct():
    ids = [5, 1, 300, 2**40, 128, 127, 5]
    assert codec.decode(codec.encode(ids)) == sorted(set(ids))
    assert codec.decode(codec.encode([])) == []
    assert codec.encode([1, 2, 3]) == bytes([1, 1, 1])      # deltas, one byte each
    with pytest.raises(ValueError):
        codec.encode([-1])


def test_100000_ids_cost_well_under_a_megabyte():
    rng, ids, current = random.Random(1), [], 0
    for _ in range(100_000):
        current += 1 + int(rng.expovariate(1 / 20))          # gaps: deleted records, other objects
        ids.append(current)
    packed = codec.pack({"contacts": ids, "deals": ids[:5000], "accounts": []}, {"connection": "c1", "generation": 3})
    assert len(packed) < 150_000
    header, sets = codec.unpack(packed)
    assert sets == {"contacts": ids, "deals": ids[:5000], "accounts": []}
    assert header["connection"] == "c1" and header["generation"] == 3 and header["version"] == codec.VERSION


@pytest.mark.parametrize("data", [b"", b"garbage", zlib.compress(b'{"version": 99, "sets": {}}\n'),
                                  zlib.compress(b'{"version": 1, "sets": {"contacts": 5}}\n\x01'),
                                  zlib.compress(b'{"version": 1, "sets": {"contacts": 1}}\n\x81'),
                                  zlib.compress(b'{"version": 1, "sets": {}}\n\x01')])
def test_anything_else_is_unreadable(data):
    with pytest.raises(codec.Unreadable):
        codec.unpack(data)


def test_the_schedule_spreads_tenants_over_the_interval():
    hours = [service.slot(f"account-{n}", f"user-{n}", 168) for n in range(5_000)]
    per_hour = [hours.count(h) for h in range(168)]
    assert min(per_hour) > 0 and max(per_hour) < 3 * 5_000 / 168
    assert service.slot("account-1", "user-1", 168) == service.slot("account-1", "user-1", 168)
    assert {service.slot("a", "b", 1)} == {0}
