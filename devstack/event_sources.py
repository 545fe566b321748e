"""The template's queues, bucket and event-driven functions, run on moto as AWS runs them.

Read from template.yaml (so the local runtime cannot drift from what is deployed):

* `AWS::SQS::Queue` and `AWS::S3::Bucket` resources are created in moto (FIFO, content-based
  deduplication, deduplication scope, retention and the redrive policy to the DLQ as the template says;
  the visibility timeout is capped locally, default 30 s, so a crashed step is retried within a minute);
  `resource_env()` gives the values of the functions' environment variables that `!Ref`/`!GetAtt` them
  (queue URL, bucket name, ARNs), which the local API Gateway cannot resolve itself;
* every function event of type `SQS` gets a poller thread that does what Lambda's SQS event source mapping
  does: ReceiveMessage (BatchSize, the queue's visibility timeout), invoke the function with an `aws:sqs`
  event, delete the messages that succeeded (with `ReportBatchItemFailures`, all but the reported
  `batchItemFailures`; an invocation error fails the whole batch). Failed messages come back after
  their visibility timeout (or the delay the function set with ChangeMessageVisibility), and moto moves a
  message to the DLQ once it was received maxReceiveCount times, as SQS does. FIFO message groups are
  honoured by moto: no message of a group is delivered while another of the group is in flight;
* every function event of type `EventBridgeRule` becomes a moto EventBridge rule with the same bus and
  pattern, targeting a local SQS "tap" queue whose poller invokes the function with the event (like an
  asynchronous invoke: retried twice, then dropped with a log line);
* a catch-all rule on the buses (source = EVENT_SOURCE) copies this service's own events into a log that
  `published()` returns, so tests and the developer can see what downstream services would receive.

Locally each function runs one invocation at a time (one "container", see devstack/apigw.py), so steps of
jobs on different AC accounts run one after another here, where Lambda would run them side by side.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devstack.apigw import load_template

log = logging.getLogger("devstack.event_sources")

ACCOUNT_ID = "123456789012"
LOCAL_VISIBILITY_CAP = 30           # seconds; the template's 1800 would park a crashed step for 30 minutes
EVENT_DELIVERY_ATTEMPTS = 3         # EventBridge -> Lambda asynchronous invoke: the first try and 2 retries
POLL_WAIT_SECONDS = 1
QUEUE_ATTRIBUTES = ("FifoQueue", "ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit",
                    "MessageRetentionPeriod", "DelaySeconds", "MaximumMessageSize")


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


class EventSources:
    """Create the template's AWS resources in moto and run its SQS and EventBridge function events.

    `invoke(function_logical_id, event)` runs a function (LocalApiGateway.invoke). `parameters` are the
    template parameters' values (for a `!Ref EventBusName` and the like)."""

    def __init__(self, template: str | Path, *, endpoint_url: str, region: str,
                 invoke: Callable[[str, dict], Any], parameters: dict[str, str] | None = None,
                 event_source: str = "activecampaign-integration",
                 visibility_cap: int = LOCAL_VISIBILITY_CAP) -> None:
        self.template = load_template(template)
        self.endpoint_url, self.region, self.invoke = endpoint_url, region, invoke
        self.parameters = dict(parameters or {})
        self.event_source = event_source
        self.visibility_cap = visibility_cap
        self.queues: dict[str, dict[str, str]] = {}      # logical id -> {"url", "arn", "name"}
        self.buckets: dict[str, str] = {}                # logical id -> bucket name
        self.pollers: list[_Poller] = []
        self._log_queue: str | None = None
        self._published: list[dict] = []
        self._published_lock = threading.Lock()

    # ---------------------------------------------------------------- clients
    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint_url, region_name=self.region,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    @property
    def resources(self) -> dict[str, dict]:
        return self.template.get("Resources") or {}

    def _parameter(self, value: Any) -> str:
        if isinstance(value, dict) and "Ref" in value:
            name = value["Ref"]
            spec = (self.template.get("Parameters") or {}).get(name) or {}
            return str(self.parameters.get(name, spec.get("Default", "")))
        return str(value)

    def _pattern(self, pattern: dict) -> dict:
        """An event pattern with its `!Ref <parameter>` values read (a CommaDelimitedList is a list)."""
        out = {}
        for key, value in pattern.items():
            if isinstance(value, dict) and set(value) == {"Ref"}:
                spec = (self.template.get("Parameters") or {}).get(value["Ref"]) or {}
                text = self._parameter(value)
                value = [part.strip() for part in text.split(",")] if spec.get("Type") == "CommaDelimitedList" \
                    else [text]
            elif isinstance(value, dict):
                value = self._pattern(value)
            out[key] = value
        return out

    # ---------------------------------------------------------------- resources
    def create(self) -> EventSources:
        sqs = self.client("sqs")
        pending = {lid: res for lid, res in self.resources.items() if res.get("Type") == "AWS::SQS::Queue"}
        while pending:   # dead-letter queues first: a redrive policy names its DLQ's ARN
            ready = [lid for lid, res in pending.items()
                     if self._dlq_of(res) is None or self._dlq_of(res) in self.queues]
            if not ready:
                raise ValueError(f"redrive policies refer to unknown queues: {sorted(pending)}")
            for lid in ready:
                self._create_queue(sqs, lid, pending.pop(lid).get("Properties") or {})
        s3 = self.client("s3")
        for lid, res in self.resources.items():
            if res.get("Type") == "AWS::S3::Bucket":
                name = f"local-{lid.lower()}"
                # (already there: a moto server shared by several local stacks)
                with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
                    s3.create_bucket(Bucket=name)
                self.buckets[lid] = name
        return self

    @staticmethod
    def _dlq_of(resource: dict) -> str | None:
        target = ((resource.get("Properties") or {}).get("RedrivePolicy") or {}).get("deadLetterTargetArn")
        if isinstance(target, dict) and "Fn::GetAtt" in target:
            return target["Fn::GetAtt"][0] if isinstance(target["Fn::GetAtt"], list) \
                else str(target["Fn::GetAtt"]).split(".")[0]
        return None

    def _create_queue(self, sqs: Any, logical_id: str, props: dict) -> None:
        fifo = bool(props.get("FifoQueue"))
        name = f"local-{logical_id}" + (".fifo" if fifo else "")
        attributes = {key: _text(props[key]) for key in QUEUE_ATTRIBUTES if key in props}
        visibility = int(props.get("VisibilityTimeout", 30))
        attributes["VisibilityTimeout"] = str(min(visibility, self.visibility_cap))
        redrive = props.get("RedrivePolicy")
        if redrive:
            dlq = self._dlq_of({"Properties": props})
            attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": self.queues[dlq]["arn"],
                                                      "maxReceiveCount": int(redrive["maxReceiveCount"])})
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.queues[logical_id] = {"url": url, "arn": arn, "name": name}

    def resource_env(self) -> dict[str, str]:
        """Environment variables of the template's functions whose value is a `!Ref` (queue URL, bucket
        name) or `!GetAtt X.Arn` of a queue or bucket created here."""
        values: dict[str, str] = {}
        for res in self.resources.values():
            if res.get("Type") != "AWS::Serverless::Function":
                continue
            variables = ((res.get("Properties") or {}).get("Environment") or {}).get("Variables") or {}
            for name, raw in variables.items():
                value = self._resolve(raw)
                if value is not None:
                    values[name] = value
        return values

    def _resolve(self, raw: Any) -> str | None:
        if isinstance(raw, dict) and set(raw) == {"Ref"}:
            target = raw["Ref"]
            if target in self.queues:
                return self.queues[target]["url"]
            return self.buckets.get(target)
        if isinstance(raw, dict) and "Fn::GetAtt" in raw:
            target, attribute = (raw["Fn::GetAtt"] if isinstance(raw["Fn::GetAtt"], list)
                                 else str(raw["Fn::GetAtt"]).split(".", 1))
            if attribute == "Arn" and target in self.queues:
                return self.queues[target]["arn"]
            if attribute == "Arn" and target in self.buckets:
                return f"arn:aws:s3:::{self.buckets[target]}"
        return None

    # ---------------------------------------------------------------- event sources
    def start(self, functions: set[str] | None = None) -> EventSources:
        """Start the pollers (of `functions` only, when given: e.g. a worker in another process)."""
        sqs, events = self.client("sqs"), self.client("events")
        buses = set()
        for lid, res in self.resources.items():
            if res.get("Type") != "AWS::Serverless::Function" or (functions is not None and lid not in functions):
                continue
            for event_name, event in ((res.get("Properties") or {}).get("Events") or {}).items():
                props = event.get("Properties") or {}
                if event.get("Type") == "SQS":
                    queue = self._resolve(props.get("Queue"))
                    match = next((q for q in self.queues.values() if q["arn"] == queue), None)
                    if match is None:
                        raise ValueError(f"{lid}.{event_name}: queue {props.get('Queue')!r} is not in the template")
                    partial = "ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or [])
                    self.pollers.append(_SqsPoller(self, lid, match["url"], int(props.get("BatchSize", 10)), partial))
                elif event.get("Type") == "EventBridgeRule":
                    bus = self._parameter(props.get("EventBusName", "default"))
                    buses.add(bus)
                    url = self._tap(sqs, events, bus, f"local-{lid}-{event_name}",
                                    self._pattern(props.get("Pattern") or {}))
                    self.pollers.append(_EventPoller(self, lid, url))
        for bus in (buses or {"default"}) if functions is None else ():
            self._log_queue = self._tap(sqs, events, bus, "local-published-events", {"source": [self.event_source]})
        for poller in self.pollers:
            poller.start()
        return self

    def _tap(self, sqs: Any, events: Any, bus: str, name: str, pattern: dict) -> str:
        if bus != "default":
            with contextlib.suppress(events.exceptions.ResourceAlreadyExistsException):
                events.create_event_bus(Name=bus)
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps(pattern), State="ENABLED")
        events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "local-tap", "Arn": arn}])
        return url

    def stop(self, timeout: float = 5.0) -> None:
        for poller in self.pollers:
            poller.stopping.set()
        deadline = time.monotonic() + timeout
        for poller in self.pollers:
            poller.join(max(0.0, deadline - time.monotonic()))
        self.pollers.clear()

    def published(self) -> list[dict]:
        """Every event this service published so far (oldest first)."""
        if self._log_queue is not None:
            sqs = self.client("sqs")
            while True:
                messages = sqs.receive_message(QueueUrl=self._log_queue, MaxNumberOfMessages=10,
                                               WaitTimeSeconds=0).get("Messages", [])
                if not messages:
                    break
                with self._published_lock:
                    self._published.extend(json.loads(m["Body"]) for m in messages)
                for message in messages:
                    sqs.delete_message(QueueUrl=self._log_queue, ReceiptHandle=message["ReceiptHandle"])
        with self._published_lock:
            return list(self._published)


class _Poller(threading.Thread):
    def __init__(self, sources: EventSources, function: str, queue_url: str) -> None:
        super().__init__(name=f"poller-{function}", daemon=True)
        self.sources, self.function, self.queue_url = sources, function, queue_url
        self.stopping = threading.Event()
        self.sqs = sources.client("sqs")

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.poll()
            except Exception as exc:   # moto stopping under us, and the like: keep the thread alive
                if self.stopping.is_set():
                    return
                log.warning("%s poller: %s: %s", self.function, type(exc).__name__, exc)
                self.stopping.wait(1.0)

    def receive(self, batch: int) -> list[dict]:
        return self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=batch,
                                        WaitTimeSeconds=POLL_WAIT_SECONDS, AttributeNames=["All"],
                                        MessageAttributeNames=["All"]).get("Messages", [])

    def delete(self, message: dict) -> None:
        self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def poll(self) -> None:
        raise NotImplementedError


class _SqsPoller(_Poller):
    """Lambda's SQS event source mapping for one function and queue."""

    def __init__(self, sources: EventSources, function: str, queue_url: str, batch: int, partial: bool) -> None:
        super().__init__(sources, function, queue_url)
        self.batch, self.partial = max(1, min(10, batch)), partial
        attributes = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        self.arn = attributes["Attributes"]["QueueArn"]

    def _record(self, message: dict) -> dict:
        return {"messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"], "attributes": dict(message.get("Attributes") or {}),
                "messageAttributes": message.get("MessageAttributes") or {}, "md5OfBody": message.get("MD5OfBody"),
                "eventSource": "aws:sqs", "eventSourceARN": self.arn, "awsRegion": self.sources.region}

    def poll(self) -> None:
        messages = self.receive(self.batch)
        if not messages:
            return
        try:
            reply = self.sources.invoke(self.function, {"Records": [self._record(m) for m in messages]})
        except Exception as exc:
            log.info("%s failed (%s: %s); %d message(s) come back after their visibility timeout",
                     self.function, type(exc).__name__, exc, len(messages))
            return
        failed = set()
        if self.partial and isinstance(reply, dict):
            failed = {str(item.get("itemIdentifier")) for item in reply.get("batchItemFailures") or []}
        for message in messages:
            if message["MessageId"] not in failed:
                self.delete(message)


class _EventPoller(_Poller):
    """An EventBridge rule's Lambda target (asynchronous invoke), fed from a local tap queue."""

    def poll(self) -> None:
        for message in self.receive(1):
            attempts = int((message.get("Attributes") or {}).get("ApproximateReceiveCount", "1"))
            try:
                self.sources.invoke(self.function, json.loads(message["Body"]))
            except Exception as exc:
                if attempts < EVENT_DELIVERY_ATTEMPTS:
                    log.info("%s failed on an event (%s); retried", self.function, type(exc).__name__)
                    self.sqs.change_message_visibility(QueueUrl=self.queue_url,
                                                       ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=1)
                    continue
                log.warning("%s failed on an event %d times; dropped", self.function, attempts)
            self.delete(message)
