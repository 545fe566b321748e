"""Indexes of cached reference data are built once per cached list (acexport.ac.reference.derived)."""

from acexport import caches
from acexport.ac import reference


def test_an_index_is_built_once_per_list_and_again_for_a_new_list():
    built = []

    def index(items):
        built.append(len(items))
        return {str(item["id"]): item for item in items}

    tags = [{"id": 1, "tag": "vip"}, {"id": 2, "tag": "lead"}]
    assert reference.derived(tags, index) is reference.derived(tags, index)
    assert built == [2]
    refreshed = [*tags, {"id": 3, "tag": "new"}]          # the cache refreshed: a new list
    assert set(reference.derived(refreshed, index)) == {"1", "2", "3"} and built == [2, 3]
    caches.reset()                                         # a new container
    reference.derived(tags, index)
    assert built == [2, 3, 2]


def test_an_equal_list_is_not_mistaken_for_the_cached_one():
    first = [{"id": 1}]
    index = reference.by_id(first)
    other = [{"id": 2}]
    assert reference.by_id(other) == {"2": {"id": 2}} and index == {"1": {"id": 1}}
    assert reference.by_id(None) == {} and reference.by_id([]) == {}
