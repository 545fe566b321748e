"""Deploy-time command: create every MongoDB index the service uses, after a pre-flight check of the
credential records the old service left.

    python -m acexport.setup_db            # pre-flight, then create the indexes
    python -m acexport.setup_db --check    # pre-flight only: report, change nothing

In AWS the same runs as the function SetupDbFunction (functions/setup_db), inside the functions' VPC:
on every deploy that changes the layer or a database setting, through the custom resource MongoIndexes
(`on_deploy`, acexport/custom_resource.py), and whenever wanted with `sam remote invoke SetupDbFunction`
(`on_invoke`: `{}` creates, `{"check": true}` only reports). docs/deploy.md, "Database setup".

Runs with the functions' settings (MONGODB_URI or MONGODB_URI_SECRET_ARN, MONGODB_DATABASE,
CREDENTIALS_COLLECTION, JOBS_COLLECTION, RATE_BUDGET_COLLECTION, LIVE_COLLECTION, CHANGES_COLLECTION,
CHANGES_TTL_DAYS); docs/deploy.md runs it after every
deploy, and the local stack runs it when it starts (devstack/stack.py). Creating an index that already
exists is a no-op, so running it again is always safe. Requests never create indexes (acexport.db).

The indexes:
- credentials: unique {account_id, owner} (`account_id_1_owner_1`): one connection per caller; a second
  save is a 409 because of it (credentials/store.py);
- jobs: unique request_key (one job per API call or EventBridge event), {account_id, owner, created_at}
  (a caller's recent jobs), unique sparse active_slot (the atomic active-job quota) and a TTL index on
  expires_at (jobs/store.py);
- rate budget: a TTL index on expires (ac/budget.py);
- live subscriptions: unique {account_id, owner} and unique secret_hash (live/subscriptions.py);
- changes: unique {account_id, owner, dedupe}, unique {account_id, owner, seq} (replacing the non-unique
  one of earlier versions), {account_id, owner, record_id, resource, occurred_at} and a TTL index on
  received_at (CHANGES_TTL_DAYS; a changed setting is applied to the index in place) (live/changes.py).

Pre-flight (the second security round, finding 5): the credential collection is shared with the old service. On MongoDB,
building the unique index over duplicated {account_id, owner} records fails with E11000, so duplicates
are reported first (by _id, account and owner; never a key), with what to do, and the unique index is not
attempted while any remain. Records without an owner (or account) cannot be used by any caller; they are
reported too (and two of them for one account count as duplicates: MongoDB indexes a missing field as null).

Exit status: 0 when every index exists; 1 when the credential store's unique index could not be built
(duplicates, or MongoDB refused it); 2 when MongoDB cannot be reached or a setting is missing. A TTL index
that cannot be built (e.g. an index of another shape under that name) is a warning: the service works
without it, documents are just not dropped.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import OperationFailure, PyMongoError

from acexport import db
from acexport.ac import budget
from acexport.credentials import store as credentials
from acexport.errors import ServiceUnavailableError
from acexport.jobs import store as jobs
from acexport.live import changes, subscriptions
from acexport.settings import get_settings

MAX_LISTED = 20     # records named per problem in the report (the counts are always complete)


@dataclass
class Report:
    duplicates: list[dict] = field(default_factory=list)   # {account_id, owner, ids: [...]}
    ownerless: list[dict] = field(default_factory=list)    # {_id, account_id}
    created: list[str] = field(default_factory=list)       # "<collection>: <what>"
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.errors else 0


def _blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def preflight(coll: Collection) -> Report:
    """Duplicate and owner-less credential records (read only; reads _id, account_id and owner only)."""
    report = Report()
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for doc in coll.find({}, {"_id": 1, "account_id": 1, "owner": 1}):
        account, owner = doc.get("account_id"), doc.get("owner")
        if _blank(account) or _blank(owner):
            report.ownerless.append({"_id": doc["_id"], "account_id": account})
        # What the unique index compares: a missing field is indexed as null, like an explicit null.
        groups[(repr(account), repr(owner))].append(doc)
    for docs in groups.values():
        if len(docs) > 1:
            report.duplicates.append({"account_id": docs[0].get("account_id"), "owner": docs[0].get("owner"),
                                      "ids": [d["_id"] for d in docs]})
    return report


def _index(report: Report, coll: Collection, what: str, create: Callable[[Collection], None], *,
           required: bool) -> None:
    try:
        create(coll)
    except OperationFailure as exc:   # E11000 over duplicates, an index of another shape, no privilege
        name = (exc.details or {}).get("codeName")
        line = f"{coll.name}: could not create {what} (MongoDB error {exc.code}: {name})"
        (report.errors if required else report.warnings).append(line)
    else:
        report.created.append(f"{coll.name}: {what}")


def setup(database: Database, *, credentials_collection: str, jobs_collection: str, budget_collection: str,
          live_collection: str | None = None, changes_collection: str | None = None,
          check_only: bool = False) -> Report:
    """Pre-flight, then (unless check_only) every index. Never raises for a refused index: see Report."""
    creds = database[credentials_collection]
    report = preflight(creds)
    if check_only:
        return report
    if report.duplicates:
        report.errors.append(f"{creds.name}: unique index on {{account_id, owner}} not created: "
                             f"{len(report.duplicates)} duplicated account/owner pair(s) (see above)")
    else:
        _index(report, creds, "unique index on {account_id, owner}", credentials.create_indexes, required=True)
    _index(report, database[jobs_collection],
           "request_key (unique), tenant_recent, active_slot (unique, sparse), expires_at TTL",
           jobs.create_indexes, required=True)
    _index(report, database[budget_collection], "expires TTL", budget.create_indexes, required=False)
    if live_collection:
        _index(report, database[live_collection], "account_id+owner (unique), secret_hash (unique)",
               subscriptions.create_indexes, required=True)
    if changes_collection:
        _index(report, database[changes_collection], "account_id+owner+dedupe (unique), account_id+owner+seq (unique), "
               "account_id+owner+record_id+resource+occurred_at",
               changes.create_indexes, required=True)
        _index(report, database[changes_collection], "received_at TTL", changes.create_ttl_index, required=False)
    return report


def run(*, check_only: bool = False) -> Report:
    """setup() with the functions' settings and Mongo client."""
    settings = get_settings()
    return setup(db.database(), credentials_collection=settings.credentials_collection,
                 jobs_collection=settings.jobs.collection, budget_collection=settings.rate_budget_collection,
                 live_collection=settings.live.subscriptions_collection,
                 changes_collection=settings.live.changes_collection, check_only=check_only)


def render(report: Report, *, collection: str, check_only: bool) -> str:
    lines: list[str] = []
    if report.duplicates:
        lines.append(f"DUPLICATES in {collection}: {len(report.duplicates)} account/owner pair(s) are stored "
                     "more than once; the unique index cannot be built until one record per pair remains.")
        for dup in report.duplicates[:MAX_LISTED]:
            ids = ", ".join(str(i) for i in dup["ids"])
            lines.append(f"  account_id={dup['account_id']!r} owner={dup['owner']!r}: _id {ids}")
        if len(report.duplicates) > MAX_LISTED:
            lines.append(f"  ... and {len(report.duplicates) - MAX_LISTED} more")
        lines.append("  What to do: keep the newest record of each pair (highest updated_at, else created_at) and "
                     "delete the others by _id (docs/deploy.md, 'Legacy credential records'); the user "
                     "reconnects if the kept key is stale. Then run this command again.")
    if report.ownerless:
        lines.append(f"NO OWNER in {collection}: {len(report.ownerless)} record(s) have no owner or no account_id; "
                     "no caller can reach them (connections are looked up by account and owner).")
        for doc in report.ownerless[:MAX_LISTED]:
            lines.append(f"  _id {doc['_id']} account_id={doc['account_id']!r}")
        if len(report.ownerless) > MAX_LISTED:
            lines.append(f"  ... and {len(report.ownerless) - MAX_LISTED} more")
        lines.append("  What to do: set owner to the platform user (uid) the key belongs to, if known, else delete "
                     "them (the user saves the connection again).")
    if not report.duplicates and not report.ownerless:
        lines.append(f"Pre-flight: {collection} has no duplicated or owner-less records.")
    if check_only:
        return "\n".join(lines)
    lines += [f"created (or already there): {line}" for line in report.created]
    lines += [f"WARNING: {line}" for line in report.warnings]
    lines += [f"ERROR: {line}" for line in report.errors]
    lines.append("Indexes ready." if not report.errors else "Some indexes are missing: fix the above and run again.")
    return "\n".join(lines)


@dataclass
class Outcome:
    """What one run ends with: the exit status of the command, the text it prints, the report (None when
    MongoDB or a setting was missing)."""

    code: int
    text: str
    report: Report | None = None


def outcome(*, check_only: bool = False) -> Outcome:
    try:
        collection = get_settings().credentials_collection
        report = run(check_only=check_only)
    except (ServiceUnavailableError, PyMongoError) as exc:
        # ConfigurationError names the missing variable; of a driver error only its type (never the URI).
        message = exc.message if isinstance(exc, ServiceUnavailableError) else type(exc).__name__
        return Outcome(2, f"setup_db: cannot reach MongoDB or read the settings: {message}. Needs MONGODB_URI (or "
                          "MONGODB_URI_SECRET_ARN and AWS credentials), MONGODB_DATABASE; see docs/deploy.md.")
    text = render(report, collection=collection, check_only=check_only)
    if check_only:
        return Outcome(1 if report.duplicates else 0, text, report)
    return Outcome(report.exit_code, text, report)


def on_invoke(event: dict | None) -> dict:
    """A direct invocation of SetupDbFunction (`sam remote invoke`): `{"check": true}` reports only."""
    check_only = bool(isinstance(event, dict) and event.get("check") is True)
    result = outcome(check_only=check_only)
    return {"ok": result.code == 0, "exit_code": result.code, "check_only": check_only,
            "report": result.text.splitlines()}


def on_deploy(properties: dict) -> dict:
    """The custom resource's Create/Update: every index, or custom_resource.Failed with what is wrong (the
    resource's properties only make CloudFormation call again when a setting or the layer changes; the
    function reads its settings from its environment, as every function does)."""
    from acexport.custom_resource import Failed

    result = outcome()
    if result.code != 0:
        lines = [line for line in result.text.splitlines()
                 if line.startswith(("ERROR", "DUPLICATES", "NO OWNER", "setup_db"))]
        raise Failed(" / ".join(lines) + " (full report: sam remote invoke SetupDbFunction --event "
                     "'{\"check\": true}'; docs/deploy.md)")
    report = result.report
    assert report is not None
    return {"Indexes": len(report.created), "Warnings": len(report.warnings)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m acexport.setup_db", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="pre-flight only: report, create nothing")
    args = parser.parse_args(argv)
    result = outcome(check_only=args.check)
    print(result.text, file=sys.stderr if result.code == 2 else sys.stdout)
    return result.code


if __name__ == "__main__":
    sys.exit(main())
