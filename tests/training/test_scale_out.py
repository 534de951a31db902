"""Scale-out: 4 `manage.py rqworker` processes (two presenting another host name) drain 40 queued jobs of
mixed kinds (document ingestion and small training runs) against the real database and Redis: each job
executed exactly once, none lost, none stuck."""

from __future__ import annotations

import pytest
from rq.job import Job

from documents.models import Document
from documents.pdf import pdf_render_lines
from documents.services import document_upload
from tests.training.workers import start_worker, stop_worker, wait_for
from training.models import ModelVersion, TrainingRun
from training.services import training_run_create, training_run_enqueue
from training.services.datasets import dataset_build
from training.services.workers import worker_register

INGESTIONS, RUNS = 36, 4


@pytest.mark.slow
def test_four_workers_on_two_hosts_drain_forty_mixed_jobs_exactly_once(transactional_db, import_corpus, queues,
                                                                       tmp_path):
    import_corpus(4, sentences=2)
    dataset, _created = dataset_build(task="token_classification", validation_fraction=0.25, test_fraction=0.0)
    for i in range(INGESTIONS):
        document_upload(data=pdf_render_lines([["Processo", f"número {i}", "de", "Recife", "."]] * (1 + i % 3)),
                        name=f"scale{i:02d}.pdf")
    for i in range(RUNS):
        run = training_run_create(user=None, dataset=dataset, epochs=1, batch_size=8, max_length=32, seed=i,
                                  patience=0)
        training_run_enqueue(run=run)
    job_ids = [*queues["default"].job_ids, *queues["training"].job_ids]
    assert len(job_ids) == INGESTIONS + RUNS
    # One token serves one process (a second process with a live token is refused): a token per worker.
    tokens = [worker_register(name=f"pool-{k}")[1] for k in range(4)]
    workers = [start_worker("training", "default", log=tmp_path / f"w{k}.log", DOCLOOP_WORKER_TOKEN=tokens[k],
                            DOCLOOP_WORKER_HOST=host, DOCLOOP_REAP_SECONDS=2)
               for k, host in enumerate(["host-a", "host-a", "host-b", "host-b"])]
    new_docs = Document.objects.filter(original_name__startswith="scale")
    try:
        wait_for(lambda: not new_docs.exclude(status__in=["ready", "failed"]).exists()
                 and not TrainingRun.objects.exclude(status__in=["succeeded", "failed"]).exists(),
                 timeout=900, what="every job to finish", interval=1)
    finally:
        for worker in workers:
            stop_worker(worker)
    assert all(worker.returncode in (0, -15) for worker in workers), [worker.returncode for worker in workers]
    documents = list(new_docs.values_list("status", "attempts", "worker"))
    runs = list(TrainingRun.objects.values_list("status", "attempts", "worker", "error"))
    assert [d[:2] for d in documents] == [("ready", 1)] * INGESTIONS
    assert [r[:2] for r in runs] == [("succeeded", 1)] * RUNS, runs
    assert ModelVersion.objects.count() == RUNS  # one version per run
    assert sorted(ModelVersion.objects.values_list("number", flat=True)) == list(range(1, RUNS + 1))
    hosts = {w.split(":")[0] for _s, _a, w in documents} | {r[2].split(":")[0] for r in runs}
    assert hosts == {"host-a", "host-b"}
    processes = {w for _s, _a, w in documents} | {r[2] for r in runs}
    assert len(processes) >= 4  # every job in a work horse of its own; the jobs spread over the pool
    statuses = [job.get_status() for job in Job.fetch_many(job_ids, connection=queues["default"].connection)]
    assert statuses == ["finished"] * len(job_ids)  # none lost, none failed, none left in a queue
    assert queues["default"].count == queues["training"].count == 0
