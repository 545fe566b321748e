"""docs/query.md names every filter and order the resources accept (so the docs cannot drift)."""

import re
from pathlib import Path

import pytest
from acexport.ac.resources import RESOURCES

DOC = (Path(__file__).resolve().parents[2] / "docs" / "query.md").read_text()


def section(name: str) -> str:
    match = re.search(rf"^## {name.title()}\n(.*?)(?=^## |\Z)", DOC, re.S | re.M)
    assert match, f"docs/query.md has no section for {name}"
    return match.group(1)


@pytest.mark.parametrize("name", sorted(RESOURCES))
def test_every_filter_and_order_is_documented(name):
    text = section(name)
    for field in [*RESOURCES[name].filters, *RESOURCES[name].orders]:
        assert f"`{field}`" in text, f"{name}: `{field}` missing from docs/query.md"
