"""The complexity gate (`make test`): no function of the layer above cyclomatic complexity 15, none of the local
runtime above 25 (radon's measure, the one `radon cc -s` prints). A function past the gate is split where it
is written, not exempted here."""

from __future__ import annotations

from pathlib import Path

import pytest
from radon.complexity import cc_visit

ROOT = Path(__file__).resolve().parents[2]
GATES = {"layers/common/acexport": 15, "functions": 15, "devstack": 25}


def _blocks(folder: str):
    for path in sorted((ROOT / folder).rglob("*.py")):
        for block in cc_visit(path.read_text()):
            if not hasattr(block, "methods"):   # functions and methods; a class's figure is its methods' sum
                yield path.relative_to(ROOT), block


@pytest.mark.parametrize(("folder", "limit"), sorted(GATES.items()))
def test_no_function_is_more_complex_than_its_gate(folder, limit):
    over = [f"{path}:{block.lineno} {block.fullname} ({block.complexity})"
            for path, block in _blocks(folder) if block.complexity > limit]
    assert not over, f"above {limit}: " + "; ".join(over)
