"""Shared code of the ActiveCampaign integration functions (the SAM layer's one package).

Modules, by what they hold:
    settings     environment settings and secrets (Powertools Parameters in AWS)
    errors       the API errors and the statuses/messages clients rely on
    api          the Powertools resolver factory, the handler decorator, the response envelopes
    identity     JWT verification (used by the authorizer only)
    tenancy      who the caller is and which account they act on (sub-accounts)
    base_url     normalisation and SSRF guard of user-supplied AC base URLs
    crypto       KMS encryption of stored api keys
    db           the Mongo client
    store        the credential store (one connection per account + owner)
    connections  save / delete / status of a connection
    ratelimit    the per-AC-account request budget
    ac_client    the HTTP client for AC's v3 API (timeouts, retries, Retry-After, deadlines)
    query        parsing of page/limit/filters[...]/orders[...]
    resources    what each exported resource supports and how it maps onto AC's real parameters
    exports      one page of an export
  full exports (jobs, docs/jobs.md):
    job_settings  the jobs' settings
    jobs          the job documents (leases, conditional checkpoints)
    job_requests  start / read / list / cancel a job, over HTTP or EventBridge
    job_view      what callers see of a job (progress, time left, download URL)
    job_walk      every record of a resource from AC, page after page, pipelined
    job_files     the export file: NDJSON/CSV, gzip members, S3 multipart upload
    job_worker    one worker step: claim, walk, write, checkpoint, hand on or finish
    job_messages  the queue message and the EventBridge events
    job_aws       the boto3 clients of the job functions
"""
