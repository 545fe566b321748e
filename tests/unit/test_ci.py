""".github/workflows/ci.yml: `make test` as a developer runs it (nx-27017) and again against a real MongoDB."""

from pathlib import Path

import yaml

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "ci.yml"


def test_make_test_runs_on_nx27017_and_on_a_mongodb_service_container():
    job = yaml.safe_load(WORKFLOW.read_text())["jobs"]["test"]
    assert job["strategy"]["matrix"]["mongo"] == ["nx-27017", "mongodb-7"]
    assert job["strategy"]["fail-fast"] is False
    service = job["services"]["mongodb"]
    assert service["image"].startswith("mongo:") and "27017:27017" in service["ports"]
    uri = job["env"]["MONGODB_URI"]
    assert "matrix.mongo == 'mongodb-7'" in uri and "mongodb://127.0.0.1:27017/" in uri and "|| ''" in uri
    runs = [step["run"] for step in job["steps"] if "run" in step]
    assert runs == ["make test PYTHON=python3.13"]
    setup = next(step for step in job["steps"] if step.get("uses", "").startswith("actions/setup-python"))
    assert setup["with"]["python-version"] == "3.13"


def test_the_smoke_and_the_e2e_tier_run_against_make_dev():
    """The deploy's smoke test and tests/e2e run in CI against the local stack, with a deploy's four settings."""
    job = yaml.safe_load(WORKFLOW.read_text())["jobs"]["e2e"]
    assert job["env"]["API_URL"] == "http://127.0.0.1:3000" and job["env"]["AC_URL"] == "http://127.0.0.1:8010"
    runs = [step["run"] for step in job["steps"] if "run" in step]
    assert "nohup make dev" in runs[0]
    assert runs[1].startswith("make smoke ") and runs[2].startswith("make e2e ")
    for run in runs[1:3]:
        assert all(f'{name}="${name}"' in run for name in ("API_URL", "AC_URL", "AC_KEY", "JWT_SECRET"))
