"""One worker step of a reconcile job (the export worker runs it for a job of `kind: "reconcile"`).

A step claims the job's lease like an export step, reads ids (`ids.IdWalk`) for contacts, deals and
accounts in turn, and when all are read compares them with the sets the previous reconcile stored:

- no stored sets, or sets stored for another connection (a reconnect, maybe to another AC account): a
  new baseline, nothing reported;
- else each id stored before and not read now is a deletion (`deletions.report`, each once);

then stores the new sets (`storage.save`) and ends the job. Nothing is reported before every id was read:
a step that fails half-way (AC unavailable beyond the client's retries, a crash) reports nothing, and the
queue delivers its message again (the export worker's back-off; after maxReceiveCount the DLQ fails the
job); a failure AC's answers make permanent (a refused key, a missing permission, an answer that can
never be used) fails the job at once.

When the step's time runs out (EXPORT_STEP_SECONDS, or the Lambda's time less EXPORT_RESERVE_SECONDS)
the ids read so far go to S3 (`storage.save_partial`), the walk's cursor into the job's checkpoint, and
the rest is handed on through the queue, as export steps do.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from typing import Any

from acexport import metrics
from acexport.ac.client import ACClient
from acexport.credentials import store
from acexport.errors import NOT_CONNECTED, UpstreamTimeoutError, UpstreamUnavailableError
from acexport.jobs import store as jobs
from acexport.jobs import worker
from acexport.jobs.messages import send_work
from acexport.jobs.view import iso
from acexport.jobs.worker import CONNECTION_CHANGED, JobFailed, Outcome, Stopped, finalize
from acexport.logs import bind_tenant
from acexport.reconcile import deletions, storage
from acexport.reconcile.ids import RESOURCES, IdWalk, Shifted
from acexport.settings import JobSettings, reconcile_settings
from acexport.tenancy import Tenant

logger = logging.getLogger(__name__)

MOVED = ("ActiveCampaign's deals or accounts kept moving while the reconcile read them; nothing was reported, "
         "start the reconcile again")


# What an error means for a reconcile: the export worker's table (jobs.worker.OUTCOMES), except that a reconcile
# reads AC without the export walk's patience and reports nothing before its last read, so AC unavailable or slow
# is the queue's to retry, and so is a value it cannot read (no record of the job's own is involved).
OUTCOMES: dict[type[BaseException], Outcome] = {
    **{kind: outcome for kind, outcome in worker.OUTCOMES.items() if kind not in (ValueError, OverflowError)},
    UpstreamUnavailableError: Outcome.RETRY,
    UpstreamTimeoutError: Outcome.RETRY,
}


def run(job_id: str, worker: str, settings: JobSettings, lambda_deadline: float) -> None:
    ReconcileStep(job_id, worker, settings, lambda_deadline).run()


worker.KINDS["reconcile"] = run


class ReconcileStep:
    def __init__(self, job_id: str, worker: str, settings: JobSettings, lambda_deadline: float):
        self.job_id, self.worker, self.settings = job_id, worker, settings
        self.doc: dict = {}
        self.seq = 0
        self.tenant: Tenant | None = None
        self.client: ACClient | None = None
        self.sets: dict[str, set[int]] = {name: set() for name in RESOURCES}
        self.totals: dict[str, int] = {}
        now = time.monotonic()
        self.deadline = lambda_deadline - settings.reserve_seconds
        self.stop_at = min(self.deadline, now + settings.step_seconds) if settings.step_seconds else self.deadline
        self.next_tick = now + settings.progress_seconds

    # ---- lifecycle (as jobs.worker.Step)
    def run(self) -> None:
        doc = jobs.claim(self.job_id, self.worker, self.settings.lease_seconds)
        if doc is None:
            worker.not_claimed(self.job_id)
            return
        self.doc, self.seq = doc, int(doc.get("seq", 0))
        self.tenant = Tenant(account_id=doc["account_id"], owner=doc["owner"], workspace_id=doc.get("workspace_id"),
                             agency_account_id=doc.get("agency_account_id"))
        bind_tenant(self.tenant)
        started = time.monotonic()
        try:
            self._work()
        except BaseException as exc:
            outcome = worker.outcome_of(exc, OUTCOMES)
            if outcome is Outcome.RETRY:
                self._release()
                raise                               # AC or our dependencies unavailable: retried by the queue
            if outcome is Outcome.STOP:
                self._stopped()
            else:                                   # RECONNECT: the client (store.client) marked the connection
                self._fail(worker.failure_of(exc))
        finally:
            metrics.add("JobStepSeconds", metrics.MetricUnit.Seconds, round(time.monotonic() - started, 3))
            if self.client is not None:
                metrics.add("ACCalls", metrics.MetricUnit.Count, self.client.calls)
                if self.client.throttled:
                    metrics.add("ACThrottled", metrics.MetricUnit.Count, self.client.throttled)

    def _release(self) -> None:
        with contextlib.suppress(Exception):
            jobs.release(self.job_id, self.worker)

    def _drop_partial(self) -> None:
        if (self.doc.get("checkpoint") or {}).get("partial"):
            with contextlib.suppress(Exception):
                storage.drop_partial(self.doc)

    def _stopped(self) -> None:
        doc = jobs.get(self.job_id)
        if doc is not None and doc["status"] in jobs.TERMINAL:
            self._drop_partial()
            finalize(self.job_id, doc)
        else:
            logger.warning("lease lost; another step continues", extra={"job_id": self.job_id})

    def _fail(self, failure: JobFailed) -> None:
        if jobs.settle(self.job_id, "failed", {"error": failure.error, "progress": self._progress()},
                       worker=self.worker, seq=self.seq):
            logger.warning("reconcile failed", extra={"job_id": self.job_id, "reason": failure.error["message"]})
            metrics.add("JobFailed", metrics.MetricUnit.Count, 1)
            self._drop_partial()
            finalize(self.job_id)
        else:
            self._stopped()

    # ---- the work
    def _progress(self) -> dict:
        read = sum(len(ids) for ids in self.sets.values())
        return {"read": read, "written": 0, **({"total": sum(self.totals.values())} if self.totals else {})}

    def _tenant(self) -> Tenant:
        assert self.tenant is not None, "set by run() before any work"
        return self.tenant

    def _client(self) -> ACClient:
        connection = store.find(self._tenant())
        if connection is None:
            raise JobFailed(NOT_CONNECTED)
        if store.identity(connection) != self.doc.get("connection"):
            raise JobFailed(CONNECTION_CHANGED)
        self.client = store.client(connection, deadline=self.deadline)   # marks a refused key for reconnecting
        return self.client

    def _tick(self, *, now: bool = False) -> None:
        """Every EXPORT_PROGRESS_SECONDS: renew the lease, record progress, notice a cancel or a changed
        connection."""
        if not now and time.monotonic() < self.next_tick:
            return
        self.next_tick = time.monotonic() + self.settings.progress_seconds
        if not jobs.renew(self.job_id, self.worker, self.seq, self.settings.lease_seconds, self._progress()):
            raise Stopped()
        current = store.connection_id(self._tenant())
        if current is None:
            raise JobFailed(NOT_CONNECTED)
        if current != self.doc["connection"]["id"]:
            raise JobFailed(CONNECTION_CHANGED)

    def _work(self) -> None:
        saved = self.doc.get("checkpoint") or {}
        client = self._client()
        phase, cursor = int(saved.get("phase", 0)), dict(saved.get("cursor") or {})
        restarts = int(saved.get("restarts", 0))
        self.totals = {k: int(v) for k, v in (saved.get("totals") or {}).items()}
        if saved.get("partial"):
            partial = storage.load_partial(self.doc)
            if partial is None:                     # lost: read everything again
                phase, cursor = 0, {}
            else:
                self.sets = {name: set(partial.sets.get(name, ())) for name in RESOURCES}
        walk = IdWalk(client, stop_at=self.stop_at, in_flight=self.settings.pages_in_flight,
                      max_pages=self.settings.max_records // 100 + 1, tick=self._tick)
        walk.totals = self.totals
        while phase < len(RESOURCES):
            resource = RESOURCES[phase]
            try:
                left = walk.walk(resource, cursor, self.sets[resource])
            except Shifted:
                restarts += 1
                logger.info("records moved under the offset walk; reading them again",
                            extra={"resource": resource, "restarts": restarts})
                if restarts > reconcile_settings().max_restarts:
                    raise JobFailed(MOVED) from None
                cursor, self.sets[resource] = {}, set()    # the ids of one whole, unmoved pass
                continue
            if left is not None:
                self._hand_on({"phase": phase, "cursor": left, "restarts": restarts, "partial": True,
                               "totals": self.totals})
                return
            phase, cursor = phase + 1, {}
        self._finish()

    def _hand_on(self, checkpoint: dict) -> None:
        storage.save_partial(self.doc, storage.IdSets({name: ids for name, ids in self.sets.items()},
                                                      {"job": self.job_id}))
        handoff = self.seq + 1
        if not jobs.save(self.job_id, self.worker, self.seq, checkpoint, self._progress(), handoff=handoff,
                         lease_seconds=self.settings.lease_seconds):
            raise Stopped()
        self.seq += 1
        send_work(self.job_id, handoff, self.doc["ac_host"])
        jobs.mark_sent(self.job_id, handoff)
        logger.info("reconcile handed on", extra={"job_id": self.job_id, "read": self._progress()["read"]})

    def _finish(self) -> None:
        self._tick(now=True)                        # not cancelled, same connection: only then compare
        noticed = dt.datetime.now(dt.UTC).replace(microsecond=0)
        connection = self.doc["connection"]["id"]
        previous = storage.load(self.doc)
        known = previous.sets if previous is not None and previous.connection == connection else None
        baseline = known is None
        deleted = {name: [] if known is None else sorted(set(known.get(name, ())) - self.sets[name])
                   for name in RESOURCES}
        reported = deletions.report(self.doc, deleted, noticed_at=noticed, connection=connection,
                                    generation=previous.generation if previous else 0)
        generation = (previous.generation if previous else 0) + 1
        size = storage.save(self.doc, storage.IdSets(
            {name: ids for name, ids in self.sets.items()},
            {"connection": connection, "host": self.doc["ac_host"], "generation": generation,
             "saved_at": iso(noticed), "job": self.job_id}))
        stored = sum(len(ids) for ids in self.sets.values())
        summary: dict[str, Any] = {"baseline": baseline, "noticed_at": iso(noticed),
                   "deleted": {name: len(ids) for name, ids in deleted.items()},
                   "ids": {name: len(ids) for name, ids in self.sets.items()},
                   "requests": self.client.calls if self.client else 0, "id_set_bytes": size}
        progress = {**self._progress(), "written": stored}
        if not jobs.settle(self.job_id, "succeeded", {"progress": progress, "reconcile": summary},
                           worker=self.worker, seq=self.seq):
            raise Stopped()
        self._drop_partial()
        logger.info("reconcile succeeded", extra={"job_id": self.job_id, "baseline": baseline,
                                                  "deleted": sum(summary["deleted"].values()),
                                                  "reported_now": reported})
        metrics.add("JobSucceeded", metrics.MetricUnit.Count, 1)
        finalize(self.job_id)
