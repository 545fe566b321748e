"""The tools that read or build what template.yaml describes, each run as a subprocess: cfn-lint over the
template, and the layer's `make build-CommonLayer` (what sam build runs for the layer's BuildMethod: makefile).
The template's contract itself is read in-process by tests/unit/test_template.py."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


@pytest.mark.slow  # > 3 s (cfn-lint); `make lint` runs it too
def test_cfn_lint_reports_nothing() -> None:
    sibling = Path(sys.executable).with_name("cfn-lint")
    exe = str(sibling) if sibling.exists() else shutil.which("cfn-lint")
    if exe is None:
        pytest.fail("cfn-lint is not installed (requirements-dev.txt)")
    proc = subprocess.run([exe, str(TEMPLATE)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"cfn-lint found problems:\n{proc.stdout}\n{proc.stderr}"



@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_the_layer_build_ships_bytecode_for_the_template_architecture(tmp_path) -> None:
    """`make build-CommonLayer` (what sam build runs for BuildMethod: makefile) puts acexport and compiled
    bytecode in python/; its defaults are the template's arm64 and python3.13. Built here without PyPI: an
    empty requirements file stands in for the dependencies."""
    source = tmp_path / "common"
    shutil.copytree(ROOT / "layers/common", source, ignore=shutil.ignore_patterns("__pycache__"))
    (source / "requirements.txt").write_text("")
    makefile = (source / "Makefile").read_text()
    assert "PLATFORM ?= manylinux2014_aarch64" in makefile and "PYTHON ?= python3.13" in makefile
    out = tmp_path / "artifacts"
    subprocess.run(["make", "-s", "-C", str(source), "build-CommonLayer", f"ARTIFACTS_DIR={out}",
                    f"PYTHON={sys.executable}"], check=True, capture_output=True)
    assert (out / "python/acexport/api.py").is_file()
    compiled = list((out / "python/acexport").rglob("*.pyc"))
    assert len(compiled) >= len(list((out / "python/acexport").rglob("*.py")))
    assert all(path.read_bytes()[4:8] == b"\x01\x00\x00\x00" for path in compiled)   # PEP 552: unchecked hash
