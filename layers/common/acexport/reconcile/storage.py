"""The id sets in S3 (EXPORT_BUCKET, under RECONCILE_PREFIX), one object per connection's tenant:

    <prefix><tenant digest>/ids            the sets the last reconcile stored (codec.pack), header:
                                           connection (id), host, generation, saved_at
    <prefix><tenant digest>/jobs/<job id>  the ids a running reconcile has read so far (its hand-on between
                                           worker steps); deleted when the job ends

The tenant digest is the SHA-256 of (account_id, owner), so no spelling of one tenant's ids is another's
path. The bucket's lifecycle rule covers `exports/` only: an id set stays until the connection is deleted
(`remove`, called by DELETE /auth), which deletes every object under the tenant's prefix.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from acexport.jobs.aws import aws_errors, client, error_code
from acexport.reconcile import codec
from acexport.settings import job_settings, reconcile_settings, required
from acexport.tenancy import Tenant

logger = logging.getLogger(__name__)


@dataclass
class IdSets:
    sets: Mapping[str, Collection[int]]   # resource -> ids (lists when read, sets while a job collects)
    header: dict = field(default_factory=dict)

    @property
    def connection(self) -> str | None:
        return self.header.get("connection")

    @property
    def generation(self) -> int:
        return int(self.header.get("generation") or 0)


def _bucket() -> str:
    return required(job_settings().bucket, "EXPORT_BUCKET")


def tenant_prefix(account_id: str, owner: str) -> str:
    digest = hashlib.sha256(json.dumps([account_id, owner]).encode()).hexdigest()[:32]
    return f"{reconcile_settings().prefix}{digest}/"


def _of(tenant: Tenant | dict) -> str:
    if isinstance(tenant, dict):
        return tenant_prefix(tenant["account_id"], tenant["owner"])
    return tenant_prefix(tenant.account_id, tenant.owner)


def _get(key: str) -> bytes | None:
    from botocore.exceptions import ClientError

    with aws_errors("Id set storage"):
        try:
            return client("s3").get_object(Bucket=_bucket(), Key=key)["Body"].read()
        except ClientError as exc:
            if error_code(exc) in ("NoSuchKey", "404", "NotFound"):
                return None
            raise


def _read(key: str) -> IdSets | None:
    data = _get(key)
    if data is None:
        return None
    try:
        header, sets = codec.unpack(data)
    except codec.Unreadable:
        logger.warning("unreadable id set ignored (a new baseline is taken)", extra={"key": key})
        return None
    return IdSets(sets, header)


def _put(key: str, sets: IdSets) -> int:
    body = codec.pack(sets.sets, sets.header)
    with aws_errors("Id set storage"):
        client("s3").put_object(Bucket=_bucket(), Key=key, Body=body, ContentType="application/octet-stream")
    return len(body)


def load(tenant: Tenant | dict) -> IdSets | None:
    """The sets the last reconcile stored for the tenant, None when there are none (or unreadable)."""
    return _read(_of(tenant) + "ids")


def save(tenant: Tenant | dict, sets: IdSets) -> int:
    """Store the tenant's sets (replacing the last ones); the object's size in bytes."""
    return _put(_of(tenant) + "ids", sets)


def load_partial(doc: dict) -> IdSets | None:
    return _read(f"{_of(doc)}jobs/{doc['_id']}")


def save_partial(doc: dict, sets: IdSets) -> int:
    return _put(f"{_of(doc)}jobs/{doc['_id']}", sets)


def drop_partial(doc: dict) -> None:
    with aws_errors("Id set storage"):
        client("s3").delete_object(Bucket=_bucket(), Key=f"{_of(doc)}jobs/{doc['_id']}")


def remove(tenant: Tenant) -> int:
    """Delete every object of the tenant (DELETE /auth): its id sets and any running job's partial ids."""
    if not job_settings().bucket:
        return 0      # a function deployed without the bucket has nothing stored to remove
    prefix, removed = _of(tenant), 0
    with aws_errors("Id set storage"):
        s3 = client("s3")
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=_bucket(), Prefix=prefix):
            keys = [{"Key": item["Key"]} for item in page.get("Contents") or []]
            if keys:
                s3.delete_objects(Bucket=_bucket(), Delete={"Objects": keys, "Quiet": True})
                removed += len(keys)
    return removed
