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


def test_the_readme_commands_follow_the_ports_make_dev_uses():
    """A moved AC_SANDBOX_PORT or PORT must not send the README's commands to whatever listens on 8010 or 3000:
    the commands use $API and $AC, set once from the same variables make dev reads."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    commands = [line for block in re.findall(r"```bash\n(.*?)```", readme, re.S) for line in block.splitlines()]
    assert any(line.startswith("export AC=http://127.0.0.1:${AC_SANDBOX_PORT:-8010}") for line in commands)
    assert any(line.startswith("export API=http://127.0.0.1:${PORT:-3000}/") for line in commands)
    hard_coded = [line for line in commands if re.search(r"127\.0\.0\.1:\d", line)]
    assert not hard_coded, hard_coded
