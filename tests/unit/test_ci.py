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
