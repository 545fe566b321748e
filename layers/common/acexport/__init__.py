"""Shared code of the ActiveCampaign integration functions (the SAM layer's one package).

The tree is the architecture (docs/architecture.md has the same map, one line per module):

    settings      every setting, read once per container; secrets through Powertools Parameters
    caches        the registry of per-container caches and the one reset that forgets them all
    logs          the one Powertools Logger; the layer's loggers wired into it; bind() job id and tenant
    metrics       CloudWatch metrics (Powertools EMF), one metric set per invocation thread
    errors        the API errors and the statuses/messages clients rely on
    api           the Powertools resolver factory, the handler decorator, the response envelopes
    identity      JWT verification (the authorizer only); the secret's rotation form (current + previous)
    tenancy       who the caller is and which account they act on (sub-accounts)
    ports         what the domain code needs of AC and the stores (typing.Protocols; the unit tests' fakes)
    db            the Mongo client and the mapping of driver failures to 503
    compat        every nx-27017 (local Mongo) quirk, read back tolerantly: dates, flags, collection names
    query         the export query string (page, limit, filters[...], orders[...]) and the pagination object
    exports       one page of an export (the three GET /export/<resource> routes)
    migrate_keys  one-off command: encrypt the old service's plaintext keys
    setup_db      deploy-time command: every Mongo index, after a pre-flight of legacy credential records
    custom_resource  CloudFormation custom-resource protocol (answers the response URL, never hangs a stack)
    snapstart     Lambda SnapStart hooks: prime before the snapshot, fresh connections after a restore

    ac/           the ActiveCampaign side
      client        the HTTP client of AC's v3 API (timeouts, retry policy, Retry-After, deadlines)
      transport     where its requests go (the checked address only) and the watch that ends them at the deadline
      ratelimit     the limiter interface, BudgetExhausted and the in-process sliding window
      budget        the per-AC-account budget shared through Mongo by every container and job
      base_url      normalisation and SSRF guard of user-supplied AC base URLs
      resources     what each exported resource supports and how it maps onto AC's parameters
      reference     AC reference data (fields, tags, lists, users, pipelines, stages, custom fields), cached
      custom_fields  custom fields in queries: definitions, names resolved, the filter and order each becomes
      records       AC answers read into exported records (sideloads joined, enrichment), pages and jobs

    credentials/  the caller's AC connection
      store         the credential store (one connection per account + owner)
      crypto        KMS encryption of stored api keys, decrypted keys cached per container
      connections   save / delete / status of a connection (the /auth routes)
      attempts      the per-caller limit of connection saves (they call AC outside the host's budget)

    jobs/         full exports as jobs (docs/jobs.md)
      spec          a start request, checked before any I/O
      service       start / read / list / cancel a job, over HTTP or EventBridge
      store         the job documents (leases, conditional checkpoints)
      view          what callers see of a job (progress, time left, download URL)
      walk          every record of a resource from AC, page after page: the walk each resource needs
      pipeline      what a walk offers the worker (PageWalk) and the page pipeline the walks share
      reading       a walk's AC calls: the query, the job's patience, the page cap
      cursors       where a walk continues: typed, versioned cursors that read every stored shape
      slices        contacts: by id, in slices cut by AC's count, taking turns
      offsets       deals and accounts: by offset, each page placed by the last record written
      ahead         deals and accounts: offset pages requested ahead at predicted starts
      files         the export file's encoding (NDJSON/CSV), gzip members, the S3 multipart upload
      writer        records into the file: buffer, gzip member, parts, ETags, columns (checkpointed)
      worker        one worker step: claim, walk, write, checkpoint, hand on or finish
      messages      the queue message and the EventBridge events
      aws           the boto3 clients of the job functions

    live/         live changes: AC webhooks, the receiver, the change feed (docs/live.md)
      subscriptions  the live subscriptions (one per account + owner; the hook secret only as a hash)
      hooks         register / check / remove the webhooks at AC (the /live routes, DELETE /auth)
      form          AC's form-encoded delivery body read into nested dicts
      mapping       a delivery as a change: its type, record id, time and record in the export's names, bounded
      fields        the account's contact field catalogue (read at PUT /live): delivery keys to the export's names
      state         per subscription, for the receiver: the delivery quota and the field catalogue
      changes       the change feed: stored once (dedupe), numbered per tenant, read by cursor (TTL)
      events        the `ActiveCampaign Change` event on the bus
      receiver      one delivery: size, secret, quota, parse, store, event (POST /hooks/{secret})

    reconcile/    what AC deleted: id sets compared, deletions into the change feed (docs/live.md)
      ids           every current id of contacts (id lanes), deals and accounts (overlapping offset pages)
      codec         compact id sets: sorted, delta-encoded varints, zlib
      storage       the id sets in S3 per tenant (and a running job's partial ids); removed with the connection
      deletions     deleted records as `<resource>.deleted` changes of the feed and events on the bus, once
      service       start a reconcile job (POST /changes/reconcile, the hourly schedule), one per tenant
      step          one worker step of a reconcile job: walk, compare, report, store, finish

Imports go one way: handlers → (exports | credentials | jobs | live) → ac → (settings, errors, db, caches, logs);
live uses credentials/store and jobs' event emitter; credentials/connections calls live/hooks on delete;
reconcile uses jobs' store, queue and worker (which runs its step by the job's kind) and live's feed, and
credentials/connections removes its id sets on delete.
Nothing in `ac/` imports `credentials/` or `jobs/`; nothing imports `exports` but its handlers.
"""
