"""One step of an export job: what the worker Lambda does with one queue message.

A step claims the job's lease, resumes from its checkpoint, walks AC (`jobs.walk`) and hands the
records to the file writer (`jobs.writer`: encoding, gzip members, parts, ETags) until the walk ends or
its time runs low, then either finishes the file or saves a checkpoint and hands the rest on through the
queue. The step decides when; the writer what goes into the file. Checkpoints are saved only at page
boundaries, at a gzip member boundary, conditionally (job_store.save), right after each part upload, after
the last part and at the hand-on: after a crash, a timeout or a duplicate delivery the next step resumes
from the last one, re-reads from its cursor and re-uploads from its next part number, so every record is
in the file exactly once.

Messages: a message older than the job's newest hand-on (that was sent) is dropped; a message for a
job another step is working on is retried when that step's lease ends; a message that is not one of
ours is a poison message and goes to the DLQ at once; any other failure is retried after a back-off
(EXPORT_RETRY_SECONDS, doubling) and after maxReceiveCount deliveries lands in the DLQ, whose consumer
(`on_dead_letter`) fails the job with the reason.

Failures that end a job, with the messages clients match on: AC rejects the stored key (`Invalid
base_url or api_key`, `reconnect`, and the connection is marked for reconnecting), the connection was
deleted (`Unauthorised Access`), the connection changed since the job started (CONNECTION_CHANGED: a
job reads one AC account with one key from start to end, never two), AC kept failing beyond
EXPORT_UPSTREAM_PATIENCE_SECONDS (AC's error), AC's answers can never be used (too large, a walk that
never ends: `UpstreamInvalid`), the job's own request cannot be processed (a 4xx, an overflow), the key's
AC user lacks a permission (PermissionDenied, a 403: the permission message, no `reconnect`, nothing marked),
or AC's order of the records changed under the walk in a way it cannot place (walk.OrderLost): errors that
cannot go away fail the job at once instead of holding the host's queue group through retries. Which errors
those are is decided in one table, by error kind (`OUTCOMES`, `outcome_of`), not by the order of except clauses.

Logs and metrics: every line of a step names the job and its tenant (acexport.logs.bind). Each step
publishes, as page exports do (Powertools Metrics, CloudWatch EMF, flushed by the handlers): ExportedRecords
(records written by the step), JobStepSeconds, ACCalls, ACThrottled (429s), and per job JobSucceeded or
JobFailed (failures the worker decides, and jobs the dead-letter consumer fails). The template's alarms
watch JobFailed and ACThrottled (docs/runbook.md).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from acexport import metrics
from acexport.ac.client import ACClient, UpstreamInvalidError
from acexport.ac.resources import RESOURCES
from acexport.credentials import store as credential_store
from acexport.errors import (
    INVALID_CREDENTIALS,
    NOT_CONNECTED,
    ApiError,
    ServiceUnavailableError,
    StoredCredentialsRejectedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from acexport.jobs import store as job_store
from acexport.jobs.cursors import CursorUnreadable
from acexport.jobs.files import Upload, file_name
from acexport.jobs.messages import FINISHED, delay_redelivery, emit, parse_work, send_work
from acexport.jobs.pipeline import Page, PageWalk
from acexport.jobs.spec import JobSpec
from acexport.jobs.view import iso
from acexport.jobs.walk import OrderLost, OutOfTime, Walk
from acexport.jobs.writer import FileWriter
from acexport.logs import bind, bind_tenant
from acexport.settings import JobSettings, get_settings, job_settings, required
from acexport.tenancy import Tenant

logger = logging.getLogger(__name__)

MAX_RETRY_DELAY = 900
CONNECTION_CHANGED = ("The ActiveCampaign connection changed while the export ran (reconnected or replaced); "
                      "start a new export")
CANNOT_PROCESS = "The export request cannot be processed; start a new export with other options"


# The steps of other kinds of jobs in this queue and store, by the job's `kind` (a job without one is an
# export): each registers itself when imported (acexport/reconcile/step.py; the worker function imports it).
KINDS: dict[str, Callable[[str, str, JobSettings, float], None]] = {}


class PoisonMessage(Exception):
    """A queue message that is not an export job message: no retry can help."""


class LeaseHeld(Exception):
    """Another step holds the job; retry this message when its lease ends."""

    def __init__(self, wait: float):
        super().__init__(f"job leased for {wait:.1f}s more")
        self.wait = wait


class Stopped(Exception):
    """The job was cancelled, or this step lost its lease: stop without saving anything."""


class JobFailed(Exception):
    """The job cannot succeed: fail it with this (client-facing) error."""

    def __init__(self, message: str, *, reconnect: bool = False):
        super().__init__(message)
        self.error = {"message": message, **({"reconnect": 1} if reconnect else {})}


# ---- entry points -------------------------------------------------------------------------------

def on_message(body: str, *, receipt_handle: str, receive_count: int, remaining_seconds: float,
               worker_id: str) -> None:
    """Handle one queue message; raise to have it retried (with the delay set here)."""
    try:
        handle(body, remaining_seconds=remaining_seconds, worker_id=worker_id)
    except PoisonMessage:
        logger.error("poison message: not an export job message; sent to the DLQ")
        delay_redelivery(receipt_handle, 0)
        raise
    except LeaseHeld as held:
        logger.info("job held by another step; retrying later", extra={"wait": round(held.wait, 1)})
        delay_redelivery(receipt_handle, held.wait + 1)
        raise
    except Exception as exc:
        parsed = parse_work(body)
        if parsed is not None:
            _note_error(parsed[0], exc)
        base = job_settings().retry_seconds
        delay_redelivery(receipt_handle, min(MAX_RETRY_DELAY, base * 2 ** max(0, receive_count - 1)))
        raise


def on_dead_letter(body: str) -> None:
    """A message the worker failed on maxReceiveCount times: fail its job with the reason (unless the
    message was superseded, or a live step is working on the job)."""
    parsed = parse_work(body)
    if parsed is None:
        logger.error("poison message in the DLQ (not an export job message); dropped")
        return
    job_id, seq = parsed
    bind(job_id=job_id)
    doc = job_store.get(job_id)
    if doc is None or doc["status"] in job_store.TERMINAL or _superseded(doc, seq):
        return
    bind(account_id=doc.get("account_id"), owner=doc.get("owner"))
    until = job_store.as_datetime((doc.get("lease") or {}).get("until"))
    if until and until > job_store.now():
        logger.warning("dead letter for a job that is being worked on; ignored", extra={"job_id": job_id})
        return
    reason = doc.get("last_error") or "no error was recorded"
    message = f"The export worker failed repeatedly on this job ({reason}); start a new export"
    if job_store.settle(job_id, "failed", {"error": {"message": message}}):
        logger.error("export job failed in the dead-letter queue", extra={"reason": reason})
        metrics.add("JobFailed", metrics.MetricUnit.Count, 1)
        finalize(job_id)


def handle(body: str, *, remaining_seconds: float, worker_id: str) -> None:
    parsed = parse_work(body)
    if parsed is None:
        raise PoisonMessage()
    job_id, seq = parsed
    bind(job_id=job_id)
    doc = job_store.get(job_id)
    if doc is None:
        logger.warning("message for an unknown job; dropped", extra={"job_id": job_id})
        return
    if doc["status"] in job_store.TERMINAL:
        finalize(job_id, doc)
        return
    if _superseded(doc, seq):
        logger.info("superseded message; dropped", extra={"job_id": job_id, "seq": seq})
        return
    other = KINDS.get(doc.get("kind") or "")
    if other is not None:                   # another kind of job (a reconcile): its own step, same plumbing
        other(job_id, worker_id, job_settings(), time.monotonic() + remaining_seconds)
        return
    Step(job_id, worker_id, job_settings(), time.monotonic() + remaining_seconds).run()


def _superseded(doc: dict, seq: int) -> bool:
    handoff = doc.get("handoff") or {}
    return seq < int(handoff.get("seq", 0)) and bool(handoff.get("sent"))


def _note_error(job_id: str, exc: BaseException) -> None:
    """Remember why a step failed, for the DLQ's verdict: fixed text only, never an exception's free text
    (it could carry data), except our own API errors' messages, which are fixed text."""
    text = f"{type(exc).__name__}: {exc.message}" if isinstance(exc, ApiError) else type(exc).__name__
    try:
        job_store.set_fields(job_id, {"last_error": text[:300]})
    except Exception:
        logger.warning("could not record the step's error", extra={"job_id": job_id})


# ---- finishing ----------------------------------------------------------------------------------

def finalize(job_id: str, doc: dict | None = None) -> None:
    """The side effects of a finished job, once: abort an unfinished upload, emit the finished event."""
    doc = doc if doc is not None else job_store.get(job_id)
    if doc is None or doc["status"] not in job_store.TERMINAL or doc.get("finalized"):
        return
    upload = doc.get("upload")
    if upload and doc["status"] != "succeeded":
        Upload(upload["bucket"], upload["key"], upload["upload_id"]).abort()
    emit(FINISHED, finished_event(doc))
    job_store.mark_finalized(job_id)


def finished_event(doc: dict) -> dict:
    detail = {"job_id": doc["_id"], "status": doc["status"], "account_id": doc["account_id"],
              "owner": doc["owner"], "resource": doc["resource"], "format": doc["format"],
              "source": doc.get("source", "api"), "created_at": iso(doc.get("created_at")),
              "finished_at": iso(doc.get("finished_at")), "records": 0}
    for name in ("workspace_id", "agency_account_id"):
        if doc.get(name):
            detail[name] = doc[name]
    if str(doc.get("request_key", "")).startswith("events:"):
        detail["request_id"] = doc["request_key"].rsplit(":", 1)[-1]
    file = doc.get("file")
    if doc["status"] == "succeeded" and file:
        detail.update(records=file["records"], s3={"bucket": file["bucket"], "key": file["key"],
                                                   "uri": f"s3://{file['bucket']}/{file['key']}",
                                                   "size": file["size"], "compression": "gzip"})
    if doc["status"] == "failed":
        detail["error"] = (doc.get("error") or {}).get("message")
    return detail


# ---- one step -----------------------------------------------------------------------------------

@dataclass
class _State:
    """The walk's part of the checkpoint (see jobs.store), in memory while a step works; the file's part
    (etags, sizes, buffer, columns) is the writer's (jobs.writer). One document holds both, as always:
    cursor, read, written, etags, sizes, buffer, final, then total, columns, outage_since when set."""
    cursor: dict
    read: int = 0
    written: int = 0
    total: int | None = None
    outage_since: float | None = None
    final: bool = False

    @classmethod
    def load(cls, saved: dict | None) -> _State:
        saved = saved or {}
        return cls(cursor=dict(saved.get("cursor") or {}), read=int(saved.get("read", 0)),
                   written=int(saved.get("written", 0)), total=saved.get("total"),
                   outage_since=saved.get("outage_since"), final=bool(saved.get("final")))

    def dump(self, file: dict) -> dict:
        """The checkpoint: this state with the writer's fields (`FileWriter.checkpoint()`)."""
        out = {"cursor": self.cursor, "read": self.read, "written": self.written, "etags": file["etags"],
               "sizes": file["sizes"], "buffer": file["buffer"], "final": self.final}
        for name, value in (("total", self.total), ("columns", file.get("columns")),
                            ("outage_since", self.outage_since)):
            if value is not None:
                out[name] = value
        return out

    def progress(self) -> dict:
        return {"read": self.read, "written": self.written, **({"total": self.total} if self.total is not None else {})}


# ---- what an error means for the job --------------------------------------------------------------

class Outcome(Enum):
    STOP = "stop"               # cancelled, or this step lost its lease: save nothing
    FAIL = "fail"               # the job cannot succeed: fail it with a client-facing message
    RECONNECT = "reconnect"     # AC rejects the stored key (the client marked the connection): fail the job
    RETRY = "retry"             # our side failed (Mongo, KMS, the deployment, a bug): the queue retries the step


# One error kind per base class. An error's outcome is the one of its nearest base listed here (in its class's
# method resolution order), so the decision follows the class hierarchy, never the order of this table or of
# except clauses. Every API error has one base (acexport/errors.py): ConfigurationError is a
# ServiceUnavailableError (503, RETRY: a deployment is fixed by deploying, and the DLQ fails the job if not).
OUTCOMES: dict[type[BaseException], Outcome] = {
    Stopped: Outcome.STOP,
    JobFailed: Outcome.FAIL,
    StoredCredentialsRejectedError: Outcome.RECONNECT,
    UpstreamUnavailableError: Outcome.FAIL,   # AC kept failing beyond EXPORT_UPSTREAM_PATIENCE_SECONDS
    UpstreamTimeoutError: Outcome.FAIL,
    UpstreamInvalidError: Outcome.FAIL,            # AC's answers can never be used (too large, a walk that never ends)
    OrderLost: Outcome.FAIL,                  # AC's order changed under the walk: fail rather than skip or repeat
    CursorUnreadable: Outcome.FAIL,           # a checkpoint of a newer release
    ServiceUnavailableError: Outcome.RETRY,        # our dependencies, and ConfigurationError
    ValueError: Outcome.FAIL,                 # the job's own data cannot be processed (a value out of range)
    OverflowError: Outcome.FAIL,
}


def outcome_of(exc: BaseException, outcomes: dict[type[BaseException], Outcome] = OUTCOMES) -> Outcome:
    """What `exc`, raised by a step, means for its job (`outcomes`: OUTCOMES, or another kind of job's table);
    another API error by its status: the job's own request refused (4xx, e.g. PermissionDenied) fails it, our
    own 5xx is retried; anything else is retried."""
    for kind in type(exc).__mro__:
        if kind in outcomes:
            return outcomes[kind]
        if kind is ApiError:
            return Outcome.FAIL if exc.status < 500 else Outcome.RETRY    # type: ignore[attr-defined]
    return Outcome.RETRY


def failure_of(exc: BaseException) -> JobFailed:
    """The client-facing failure of a FAIL or RECONNECT outcome: our own errors' fixed messages; never the free
    text of another exception (it could carry data)."""
    if isinstance(exc, JobFailed):
        return exc
    if outcome_of(exc) is Outcome.RECONNECT:
        return JobFailed(INVALID_CREDENTIALS, reconnect=True)
    if isinstance(exc, ApiError):
        return JobFailed(exc.message)
    if isinstance(exc, OrderLost):
        return JobFailed(str(exc))
    logger.warning("export job cannot be processed", extra={"error": type(exc).__name__})
    return JobFailed(CANNOT_PROCESS)


# ---- one step -----------------------------------------------------------------------------------


def not_claimed(job_id: str) -> None:
    """A step (of any kind of job) that could not claim its job: a finished job is finalized (again: idempotent),
    a job another step holds is retried after that step's lease (LeaseHeld), a missing one is dropped."""
    doc = job_store.get(job_id)
    if doc is None:
        return
    if doc["status"] in job_store.TERMINAL:
        finalize(job_id, doc)
        return
    until = job_store.as_datetime((doc.get("lease") or {}).get("until"))
    raise LeaseHeld(max(1.0, (until - job_store.now()).total_seconds()) if until else 1.0)


class Step:
    """One step of a job, for one queue message: claim the job (or learn why not), then work it (Claimed)."""

    def __init__(self, job_id: str, worker: str, settings: JobSettings, lambda_deadline: float):
        self.job_id, self.worker, self.settings = job_id, worker, settings
        now = time.monotonic()
        self.deadline = lambda_deadline - settings.reserve_seconds       # no AC call starts after it
        self.stop_at = min(self.deadline, now + settings.step_seconds) if settings.step_seconds else self.deadline

    def run(self) -> None:
        doc = job_store.claim(self.job_id, self.worker, self.settings.lease_seconds)
        if doc is None:
            not_claimed(self.job_id)
            return
        Claimed(self, doc).run()


class Claimed:
    """A step that holds the job's lease: the job, its tenant and its checkpoint, known when it is made. It walks
    AC into the file until the walk ends (then completes the file) or its time is up (then hands on); an error
    ends the step as `outcome_of` says."""

    def __init__(self, step: Step, doc: dict):
        self.job_id, self.worker, self.settings = step.job_id, step.worker, step.settings
        self.deadline, self.stop_at = step.deadline, step.stop_at
        self.doc = doc
        self.seq = int(doc.get("seq", 0))        # the checkpoint this step saves over (job_store.save)
        self.tenant = Tenant(account_id=doc["account_id"], owner=doc["owner"], workspace_id=doc.get("workspace_id"),
                             agency_account_id=doc.get("agency_account_id"))
        self.state = _State.load(doc.get("checkpoint"))       # the walk's part of the checkpoint
        self.next_tick = time.monotonic() + self.settings.progress_seconds

    # ---- lifecycle
    def run(self) -> None:
        bind_tenant(self.tenant)
        started, written = time.monotonic(), self.state.written
        try:
            self._work()
        except BaseException as exc:
            if outcome_of(exc) is Outcome.RETRY:
                with contextlib.suppress(Exception):     # best effort: let the retry start at once
                    job_store.release(self.job_id, self.worker)
                raise
            self._end(exc)
        finally:
            metrics.add("JobStepSeconds", metrics.MetricUnit.Seconds, round(time.monotonic() - started, 3))
            metrics.add("ExportedRecords", metrics.MetricUnit.Count, max(0, self.state.written - written))

    def _end(self, exc: BaseException) -> None:
        """The job ends (FAIL, RECONNECT) or this step stops (STOP) with `exc`."""
        outcome = outcome_of(exc)
        if outcome is Outcome.STOP:
            self._stopped()
            return
        self._fail(failure_of(exc))   # RECONNECT: the client (credential_store.client) marked the connection

    def _stopped(self) -> None:
        doc = job_store.get(self.job_id)
        if doc is not None and doc["status"] in job_store.TERMINAL:
            finalize(self.job_id, doc)            # cancelled while we worked: abort the upload, tell the world
        else:
            logger.warning("lease lost; another step continues", extra={"job_id": self.job_id})

    def _fail(self, failure: JobFailed) -> None:
        if job_store.settle(self.job_id, "failed", {"error": failure.error, "progress": self.state.progress()},
                            worker=self.worker, seq=self.seq):
            logger.warning("export job failed", extra={"job_id": self.job_id, "reason": failure.error["message"]})
            metrics.add("JobFailed", metrics.MetricUnit.Count, 1)
            finalize(self.job_id)
        else:
            self._stopped()

    # ---- the work
    def _work(self) -> None:
        if self.state.final:                      # the walk had ended; only completing the file was left
            upload = self._upload()
            self._complete(self._writer(upload), upload)
            return
        client = self._client()
        try:
            upload = self._upload()
            writer = self._writer(upload)
            self._walk(client, writer)
        finally:
            metrics.add("ACCalls", metrics.MetricUnit.Count, client.calls)
            if client.throttled:
                metrics.add("ACThrottled", metrics.MetricUnit.Count, client.throttled)
        writer.close_member()
        if self.state.final:
            writer.finish()
            self._save(writer)
            self._complete(writer, upload)
        else:
            self._hand_on(writer)

    def _client(self) -> ACClient:
        """A client of the connection the job started with (its recorded identity), or the job fails."""
        connection = credential_store.find(self.tenant)
        if connection is None:
            raise JobFailed(NOT_CONNECTED)
        recorded = self.doc.get("connection")
        if recorded and credential_store.identity(connection) != recorded:
            raise JobFailed(CONNECTION_CHANGED)
        return credential_store.client(connection, deadline=self.deadline)   # marks a refused key

    def _upload(self) -> Upload:
        saved = self.doc.get("upload")
        if saved:
            return Upload(saved["bucket"], saved["key"], saved["upload_id"])
        bucket = required(self.settings.bucket, "EXPORT_BUCKET")
        name = file_name(self.doc["resource"], self.doc["format"], self.job_id)
        upload = Upload.start(bucket, f"{self.settings.prefix}{self.job_id}/{name}", name, self.job_id)
        if not job_store.set_upload(self.job_id, self.worker, self.seq,
                                    {"bucket": upload.bucket, "key": upload.key, "upload_id": upload.upload_id}):
            upload.abort()
            raise Stopped()
        return upload

    def _spec(self) -> JobSpec:
        doc = self.doc
        return JobSpec(RESOURCES[doc["resource"]], doc["format"], tuple((doc.get("filters") or {}).items()),
                       doc.get("updated_after"))

    def _writer(self, upload: Upload) -> FileWriter:
        return FileWriter.resume(self.doc["format"], self.settings.part_size, upload, self.doc.get("checkpoint"))

    def _walk(self, client: ACClient, writer: FileWriter) -> None:
        """Pages into the file until the walk ends or the step's time is up; a part uploaded is checkpointed."""
        walk = Walk(client, self._spec(), self.state.cursor, deadline=self.deadline,
                    patience=self.settings.patience_seconds, outage_since=self.state.outage_since,
                    in_flight=self.settings.pages_in_flight, slice_pages=self.settings.slice_pages,
                    rate=get_settings().rate_limit_per_second)
        with walk:
            while True:
                more = time.monotonic() < self.stop_at     # a step always writes at least one page
                try:                                       # and, once its time is up, the pages requested
                    page = self._next_page(walk, prefetch=more)
                except OutOfTime:
                    break
                self._write(page, writer, walk.outage_since)
                if page.last:
                    break
                if writer.part_due():
                    writer.put_part()
                    self._save(writer)
                if not more and not walk.pending:
                    break
                self._tick_if_due()
            self.state.outage_since = walk.outage_since

    def _next_page(self, walk: PageWalk, *, prefetch: bool) -> Page:
        """The walk's next page; until it has arrived, the lease is renewed and a cancel noticed."""
        while True:
            page = walk.next_page(prefetch=prefetch, timeout=max(0.0, self.next_tick - time.monotonic()))
            if page is not None:
                return page
            self._tick_if_due()

    def _write(self, page: Page, writer: FileWriter, outage_since: float | None) -> None:
        writer.write(page.records)
        state = self.state
        state.cursor = page.cursor
        state.read += page.read
        state.written += len(page.records)
        state.outage_since = outage_since
        if state.total is None:
            state.total = page.total
        state.final = page.last

    def _tick_if_due(self) -> None:
        """Every EXPORT_PROGRESS_SECONDS: renew the lease, record progress, notice a cancel or a deleted
        connection."""
        if time.monotonic() < self.next_tick:
            return
        self.next_tick = time.monotonic() + self.settings.progress_seconds
        if not job_store.renew(self.job_id, self.worker, self.seq, self.settings.lease_seconds,
                               self.state.progress()):
            raise Stopped()
        current = credential_store.connection_id(self.tenant)
        if current is None:
            raise JobFailed(NOT_CONNECTED)
        if (self.doc.get("connection") or {}).get("id") not in (None, current):
            raise JobFailed(CONNECTION_CHANGED)

    def _save(self, writer: FileWriter, *, handoff: int | None = None) -> None:
        checkpoint = self.state.dump(writer.checkpoint())
        if not job_store.save(self.job_id, self.worker, self.seq, checkpoint, self.state.progress(),
                              handoff=handoff, lease_seconds=self.settings.lease_seconds):
            raise Stopped()
        self.seq += 1
        self.next_tick = time.monotonic() + self.settings.progress_seconds

    def _hand_on(self, writer: FileWriter) -> None:
        handoff = self.seq + 1
        self._save(writer, handoff=handoff)
        send_work(self.job_id, handoff, self.doc["ac_host"])
        job_store.mark_sent(self.job_id, handoff)
        logger.info("export job handed on", extra={"job_id": self.job_id, "written": self.state.written})

    def _complete(self, writer: FileWriter, upload: Upload) -> None:
        writer.complete()
        file = {"bucket": upload.bucket, "key": upload.key, "size": writer.size,
                "records": self.state.written, "name": upload.key.rsplit("/", 1)[-1]}
        if not job_store.settle(self.job_id, "succeeded", {"file": file, "progress": self.state.progress()},
                                worker=self.worker, seq=self.seq):
            upload.delete()   # cancelled (or taken over) after S3 completed the file: leave no complete file
            raise Stopped()
        logger.info("export job succeeded", extra={"job_id": self.job_id, "records": self.state.written})
        metrics.add("JobSucceeded", metrics.MetricUnit.Count, 1)
        finalize(self.job_id)
