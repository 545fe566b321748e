"""What the local stack puts in its Mongo so every sample event and every banner command works at once.

* the dev tenant (`dev-user` on `dev-account`, the banner's token and the tenant of every events/*.json)
  has a connection to the AC sandbox;
* `dev-sub-account` is a sub-account of `dev-account` in the platform's accounts collection (try
  `X-Sub-Account-Id: dev-sub-account`), and the dev user has a sandbox connection there too;
* the job the job events name (`SAMPLE_JOB_ID`, a contacts export of the dev tenant) exists;
* for events/hooks_receiver.json only (`live_subscription`): the dev tenant's live subscription answers to
  the sample's path secret (a real one is random and registered at AC by PUT /live).

Everything goes through the layer (the credential store, KMS on moto, the job store), so what is seeded is
exactly what the service itself would have written. Call only once the local gateway has applied the
stack's environment (LocalStack.start() does); every step leaves existing data alone unless it says so.
"""

from __future__ import annotations

import logging

log = logging.getLogger("devstack.seed")

DEV_UID, DEV_ACCOUNT, DEV_WORKSPACE = "dev-user", "dev-account", "dev-workspace"
DEV_SUB_ACCOUNT = "dev-sub-account"
SANDBOX_API_KEY = "sandbox-key"
SAMPLE_JOB_ID = "Zq3v0mX1bK7cR2dT9sW4yL6nH8pJ5fAe"   # the job id in events/export_job_*.json and export_worker.json
SAMPLE_HOOK_SECRET = "sample0secret0of0the0docs0not0a0real0one0x"   # the path secret in events/hooks_receiver.json


def tenant(account_id: str = DEV_ACCOUNT, uid: str = DEV_UID, workspace_id: str | None = DEV_WORKSPACE):
    from acexport.tenancy import Tenant

    return Tenant(account_id=account_id, owner=uid, workspace_id=workspace_id)


def connection(who, base_url: str, *, api_key: str = SANDBOX_API_KEY) -> bool:
    """Give `who` a connection to `base_url` (the key encrypted with the stack's KMS key), unless it has
    one. True when one was created."""
    from acexport.credentials import crypto, store
    from acexport.errors import AlreadyExistsError

    if store.exists(who):
        return False
    ciphertext = crypto.encrypt(api_key, account_id=who.account_id, owner=who.owner)
    try:
        store.insert(who, base_url=base_url, ciphertext=ciphertext)
    except AlreadyExistsError:
        return False
    return True


def sub_account(sub: str = DEV_SUB_ACCOUNT, parent: str = DEV_ACCOUNT) -> None:
    """Record `sub` as a sub-account of `parent` where tenancy.is_sub_account looks."""
    from acexport import db
    from acexport.settings import get_settings

    settings = get_settings()
    accounts = db.database()[settings.accounts_collection]
    if accounts.count_documents({settings.accounts_id_field: sub}, limit=1) == 0:
        accounts.insert_one({settings.accounts_id_field: sub, settings.accounts_parent_field: parent,
                             "name": "Dev sub-account (devstack)"})


def sample_job(who, ac_base_url: str, *, fresh: bool = False, queue: bool = False) -> dict:
    """The job the sample events name: a queued contacts export (NDJSON) of `who`, bound to `who`'s
    connection (given one to `ac_base_url` when missing). With `fresh`, a
    previous one (e.g. finished or cancelled by an earlier invoke) is replaced by a new queued one, so the
    worker, cancel and dead-letter events find what they expect. With `queue`, its first message is sent
    (a running `make dev` then exports it)."""
    from acexport import db
    from acexport.credentials import store
    from acexport.jobs import store as jobs
    from acexport.jobs.messages import send_work
    from acexport.settings import job_settings

    if fresh:
        with db.mongo_errors():
            jobs.collection().delete_one({"_id": SAMPLE_JOB_ID})
    doc = jobs.get(SAMPLE_JOB_ID)
    if doc is None:
        connection(who, ac_base_url)
        identity = store.identity(store.find(who))   # as jobs.service.start records it
        doc, _ = jobs.create({"_id": SAMPLE_JOB_ID, "request_key": f"devstack:{SAMPLE_JOB_ID}",
                              "account_id": who.account_id, "owner": who.owner, "workspace_id": who.workspace_id,
                              "source": "api", "resource": "contacts", "format": "ndjson", "filters": {},
                              "ac_host": identity["host"], "connection": identity},
                             slots=job_settings().max_active)
        if queue:
            send_work(SAMPLE_JOB_ID, 0, doc["ac_host"])
            jobs.mark_sent(SAMPLE_JOB_ID, 0)
    return doc


def sandbox_refused() -> str | None:
    """Why the service, as configured, would refuse a connection to the sandbox; None when it accepts one.

    With ACTIVECAMPAIGN_ALLOW_LOCAL_BASE_URL=false the service applies production's host rules, which refuse
    the sandbox's plain-http loopback address: a seeded connection would be one it rejects on every request."""
    from acexport.settings import get_settings

    if get_settings().allow_local_base_url:
        return None
    return ("ACTIVECAMPAIGN_ALLOW_LOCAL_BASE_URL=false: the service applies production's host rules and refuses "
            "the sandbox's http://127.0.0.1 address, so no sandbox connection and no sample job were seeded; "
            "POST /auth with a real AC account's key and https://<account>.api-us1.com URL to try it")


def seed_dev(sandbox_url: str, *, queue_sample_job: bool = True) -> list[str]:
    """Everything above for the dev tenant; what was created, as lines to print. Only the sub-account when
    the service refuses the sandbox (`sandbox_refused`)."""
    done: list[str] = []
    refused = sandbox_refused()
    if refused:
        sub_account()
        log.warning("not seeded: %s", refused)
        return done
    if connection(tenant(), sandbox_url):
        done.append(f"connection of {DEV_UID} on {DEV_ACCOUNT} -> {sandbox_url}")
    sub_account()
    if connection(tenant(DEV_SUB_ACCOUNT, workspace_id=None), sandbox_url):
        done.append(f"sub-account {DEV_SUB_ACCOUNT} of {DEV_ACCOUNT}, with a connection of {DEV_UID}")
    sample_job(tenant(), sandbox_url, queue=queue_sample_job)
    log.info("seeded: %s", "; ".join(done) or "nothing new (data kept from an earlier run)")
    return done


def live_subscription(who, secret: str = SAMPLE_HOOK_SECRET) -> None:
    """Make `secret` the path secret of `who`'s live subscription (docs/live.md), as PUT /live would after
    registering a webhook at AC; no webhook is registered."""
    from acexport.credentials import store
    from acexport.live import hooks, subscriptions

    doc = subscriptions.prepare(who, secret, connection_id=store.connection_id(who))
    subscriptions.enabled(doc, ac_host="", hook_host="", webhook_ids=[], webhook_name="devstack sample",
                          events=list(hooks.REQUIRED_EVENTS), sources=list(hooks.SOURCES))
