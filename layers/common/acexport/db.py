"""The Mongo client: one per warm container, short timeouts so an unreachable Mongo is a 503 within
seconds instead of a hang (pymongo's default server selection timeout is 30 s)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError, PyMongoError

from acexport import caches
from acexport.errors import ServiceUnavailable
from acexport.settings import get_settings, secret

_client: MongoClient | None = None
_lock = threading.Lock()
_indexed: set[str] = set()


def client() -> MongoClient:
    global _client
    with _lock:
        if _client is None:
            timeout = get_settings().mongodb_timeout_ms
            _client = MongoClient(
                secret("MONGODB_URI", "MONGODB_URI_SECRET_ARN"),
                serverSelectionTimeoutMS=timeout, connectTimeoutMS=timeout,
                socketTimeoutMS=max(5000, 2 * timeout), maxPoolSize=10, maxIdleTimeMS=60000,
                appname="activecampaign-integration", tz_aware=True,
            )
        return _client


def database():
    name = get_settings().mongodb_database
    mongo = client()
    return mongo[name] if name else mongo.get_default_database("platform")


def indexed_collection(name: str, create_indexes: Callable) -> Collection:
    """The collection `name`, its indexes created by `create_indexes(collection)` once per container."""
    coll = database()[name]
    with _lock:
        if name not in _indexed:
            with mongo_errors():
                create_indexes(coll)
            _indexed.add(name)
    return coll


@caches.register
def reset_client() -> None:
    """Close and forget the client (tests that restart Mongo)."""
    global _client
    with _lock:
        if _client is not None:
            _client.close()
        _client = None
        _indexed.clear()  # a new client may reach another server


@contextlib.contextmanager
def mongo_errors() -> Iterator[None]:
    """Translate driver failures (unreachable, dropped connection, timeouts) into a 503.
    DuplicateKeyError passes through: it is an answer, not a failure."""
    try:
        yield
    except DuplicateKeyError:
        raise
    except PyMongoError as exc:
        raise ServiceUnavailable("Database unavailable; retry later") from exc
