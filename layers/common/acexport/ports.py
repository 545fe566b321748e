"""What the domain code needs of AC and of the stores, as `typing.Protocol`s (the ports of a hexagonal layout, as
aws-samples/serverless-test-samples' hexagonal sample names them).

The production implementations satisfy them structurally, without inheriting anything: `ac.client.ACClient` is
an `ACCaller`, the module `credentials.store` is a `CredentialStore` and the module `jobs.store` a `JobStore`.
The unit tests' in-memory fakes (tests/fakes.py) satisfy the same Protocols, so a unit test runs the domain code
(the walk, the records' enrichment, custom-field resolution, a page export) in-process, with no socket
(docs/architecture.md, "Test tiers"). Each Protocol holds only what the code uses; `runtime_checkable` lets a test
check conformance with `isinstance` (attribute names only: the signatures are for readers and type checkers).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from acexport.tenancy import Tenant

Params = list[tuple[str, str]] | None


@runtime_checkable
class ACReader(Protocol):
    """Reads from one AC account with one key: what the walk, `ac.records` and `ac.reference` use. `host` and
    `key_fingerprint` key the reference cache (never the key itself)."""

    host: str

    @property
    def key_fingerprint(self) -> str: ...

    def get(self, path: str, params: Params = None) -> dict: ...


@runtime_checkable
class ACCaller(ACReader, Protocol):
    """An `ACReader` that also changes things at AC (webhooks) and counts its HTTP requests and 429s for the
    metrics."""

    calls: int
    throttled: int

    def request(self, method: str, path: str, params: Params = None, *, json: dict | None = None,
                idempotent: bool = True, missing_ok: bool = False) -> dict | None: ...


@runtime_checkable
class KeyPair(Protocol):
    """A stored connection's base URL and key, decrypted (`credentials.store.Credentials`)."""

    base_url: str
    api_key: str


@runtime_checkable
class CredentialStore(Protocol):
    """The tenants' AC connections: find a tenant's record, decrypt it, build its AC client (which marks the
    connection for reconnecting when AC refuses the key), mark it by hand."""

    def find(self, tenant: Tenant) -> dict | None: ...

    def credentials(self, doc: dict) -> KeyPair: ...

    def client(self, doc: dict, *, deadline: float) -> ACCaller: ...

    def mark_rejected(self, tenant: Tenant) -> None: ...


@runtime_checkable
class JobStore(Protocol):
    """The export jobs, as far as starting and reading one goes: `create` takes one of the tenant's active-job
    slots (the existing job and False for a request key seen before), `get_for` answers None for another
    tenant's job as for a missing one."""

    def create(self, doc: dict, *, slots: int) -> tuple[dict, bool]: ...

    def get(self, job_id: str) -> dict | None: ...

    def get_for(self, tenant: Tenant, job_id: str) -> dict | None: ...

    def cancel(self, tenant: Tenant, job_id: str) -> dict | None: ...

