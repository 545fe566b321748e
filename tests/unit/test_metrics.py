"""Metrics of concurrent invocations in one process stay apart (acexport.metrics): the local runtime runs
several functions at once in one process, where Powertools' shared metric set mixed them or raised."""

import json
import threading

from acexport import metrics

from tests.conftest import LambdaContext


def test_two_invocations_at_once_publish_their_own_metrics(capsys, monkeypatch):
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "test")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "test")
    metrics.forget()
    a_added, b_published = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    @metrics.published()
    def first(event, context):
        metrics.add("FromFirst", metrics.MetricUnit.Count, 1)
        a_added.set()
        b_published.wait(5)           # the other invocation publishes while this one has a metric pending

    @metrics.published()
    def second(event, context):
        a_added.wait(5)
        metrics.add("FromSecond", metrics.MetricUnit.Count, 2)

    def run(handler, done=None):
        try:
            handler({}, LambdaContext())
        except BaseException as error:   # the test reports it
            errors.append(error)
        if done is not None:
            done.set()

    threads = [threading.Thread(target=run, args=(first,)), threading.Thread(target=run, args=(second, b_published))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not errors
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    names = [sorted(k for k in doc if k.startswith("From")) for doc in documents]
    assert sorted(names) == [["FromFirst"], ["FromSecond"]]     # shared: [["FromFirst", "FromSecond"]], then none
