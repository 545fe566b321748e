"""Mongo dropping in the middle of a save: a 503 within the time budget and no partial write."""

import subprocess
import threading
import time

import pymongo
import pytest

from devstack.stack import _free_port, _nx_executable

pytestmark = pytest.mark.slow  # starts and kills its own Mongo server process


def start_nx(db_file, port):
    proc = subprocess.Popen([str(_nx_executable()), "--db", str(db_file), "-p", str(port), "--host", "127.0.0.1",
                             "--log-file", str(db_file) + ".log", "--pid-file", str(db_file) + ".pid"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = pymongo.MongoClient(f"mongodb://127.0.0.1:{port}/", serverSelectionTimeoutMS=200)
    for _ in range(100):
        try:
            client.admin.command("ping")
            return proc, client
        except pymongo.errors.PyMongoError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("nx-27017 did not start")


def test_mongo_killed_mid_save(api, tmp_path):
    import os

    port, db_file = _free_port(), tmp_path / "dropped.db"
    proc, client = start_nx(db_file, port)
    try:
        api.env(MONGODB_URI=f"mongodb://127.0.0.1:{port}/", MONGODB_TIMEOUT_MS="1000")
        api.sandbox.inject(delay=1.5, path="/users/me")      # AC is slow: the save is mid-flight
        result = {}

        def save():
            started = time.monotonic()
            result["reply"] = api.call("POST", "/auth", json={"api_key": "sandbox-key",
                                                               "base_url": api.sandbox.base_url})
            result["seconds"] = time.monotonic() - started

        worker = threading.Thread(target=save)
        worker.start()
        time.sleep(0.7)
        proc.kill()                                          # Mongo dies while AC is answering
        proc.wait()
        worker.join(timeout=30)
        assert result["reply"].status_code == 503, result["reply"].text
        assert result["reply"].json()["message"] == "Database unavailable; retry later"
        assert result["seconds"] < 8

        proc, client = start_nx(db_file, port)               # back up: nothing half-written
        docs = list(client["platform"][os.environ["CREDENTIALS_COLLECTION"]].find({}))
        assert docs == []
        retry = api.call("POST", "/auth", json={"api_key": "sandbox-key", "base_url": api.sandbox.base_url})
        assert retry.status_code == 200                      # and the service recovers by itself
    finally:
        client.close()
        proc.kill()
        proc.wait()
