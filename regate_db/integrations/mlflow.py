"""An MLflow run's full metric history (every metric, every step) into a regate job.

    from regate_db.integrations.mlflow import import_run

    result = import_run("postgresql://trainer@db/ml", "3f2b...", tracking_uri="http://mlflow:5000",
                        model="sentiment-bert", complete=True)

MLflow keeps one history per metric (key, value, step, timestamp). :func:`read_run` turns a run into events in
step order: at each step, one row holds the first value each metric logged there, a second row the second
values, and so on (values of a step in timestamp order), so that a metric logged twice at a step keeps both
values and the later one is final, as in MLflow. Names are the run's (``rename`` first; the metric columns go to
their columns, the rest into ``metrics``). ``mlflow`` is imported only when a run is read: install it with
the ``mlflow`` extra (``pip install '.[mlflow]'`` in a clone, or ``pip install mlflow-skinny``).
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any

from regate_db.importers import (
    Event,
    Events,
    ImportResult,
    MetricImportError,
    NewJob,
    Progress,
    Target,
    import_events,
    map_metrics,
    parse_step,
)

__all__ = ["import_run", "read_run"]


def _mlflow_client(tracking_uri: str | None) -> Any:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise MetricImportError("importing an MLflow run needs mlflow: pip install mlflow-skinny") from None
    return MlflowClient(tracking_uri=tracking_uri)


def _mlflow_problem(exc: Exception, what: str) -> MetricImportError:
    message = getattr(exc, "message", None) or str(exc)
    first = next((line.strip() for line in str(message).splitlines() if line.strip()), type(exc).__name__)
    return MetricImportError(f"{what}: {first}")


def read_run(
    run_id: str,
    *,
    tracking_uri: str | None = None,
    rename: Mapping[str, str] | None = None,
    strict: bool = False,
    progress: Progress | None = None,
) -> Events:
    """Every metric of the MLflow run ``run_id`` at every step, as :class:`~regate_db.importers.Events`
    (``tracking_uri``: default MLflow's own, ``MLFLOW_TRACKING_URI``). ``progress(done, total)`` is called as
    the metrics' histories are read. MetricImportError when the run cannot be read."""
    source = f"mlflow run {run_id}"
    try:
        client = _mlflow_client(tracking_uri)
        run = client.get_run(run_id)
        keys = sorted(run.data.metrics)
        # step -> key -> [(timestamp, order read, value)]
        by_step: dict[int, dict[str, list[tuple[int, int, float]]]] = defaultdict(lambda: defaultdict(list))
        seq = 0
        for done, key in enumerate(keys, 1):
            for point in client.get_metric_history(run_id, key):
                step = parse_step(point.step, f"{source}: metric {key}")
                by_step[step][key].append((int(point.timestamp or 0), seq, point.value))
                seq += 1
            if progress is not None:
                progress(done, len(keys))
    except MetricImportError:
        raise
    except Exception as exc:  # MlflowException, a tracking server that does not answer, ...
        raise _mlflow_problem(exc, source) from exc
    skipped: Counter[str] = Counter()
    events: list[Event] = []
    renamed = {key: (rename or {}).get(key, key) for key in keys}
    for step in sorted(by_step):
        values = {key: sorted(points) for key, points in by_step[step].items()}
        for k in range(max(len(points) for points in values.values())):
            items = [(key, points[k][2]) for key, points in values.items() if k < len(points)]
            where = f"{source}: step {step}"
            metrics = map_metrics(items, where, skipped=skipped, strict=strict, name_of=lambda key: renamed[key])
            if metrics:
                events.append(Event(step, metrics, where))
    notes = []
    status = getattr(run.info, "status", None)
    if status and status != "FINISHED":
        notes.append(f"the MLflow run's status is {status}")
    if not keys:
        notes.append("the MLflow run has no metrics")
    return Events(source, "mlflow", events, dict(skipped), 0, 0, notes)


def import_run(
    target: Target,
    run_id: str,
    job_id: uuid.UUID | str | None = None,
    *,
    tracking_uri: str | None = None,
    model: str | None = None,
    version: str | None = None,
    config: Mapping[str, Any] | None = None,
    complete: bool = False,
    strict: bool = False,
    rename: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> ImportResult:
    """Import the MLflow run ``run_id`` into the job ``job_id``, or into a new job of ``model`` (``version``,
    gate ``config``), in one transaction; ``complete`` completes the job and returns the verdict in
    :attr:`~regate_db.importers.ImportResult.verdict`. ``target``: a DSN or a psycopg connection. ``progress``
    follows the reading of the run's metrics."""
    if (job_id is None) == (model is None):
        raise ValueError("give exactly one of job_id (an existing job) and model (a new job)")
    events = read_run(run_id, tracking_uri=tracking_uri, rename=rename, strict=strict, progress=progress)
    new_job = NewJob(model, version, config) if model is not None else None
    return import_events(target, events, job_id=job_id, new_job=new_job, complete=complete)
