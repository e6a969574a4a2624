-- 0007_performance: ingest closer to a plain table, and a cheaper verdict row (issue 12).
-- regate_internal._metric_candidates, which the ingest trigger filled with each statement's latest value of every
-- metric (about 65% of its cost), goes; in its place two small append-only indexes of where a job's metrics are,
-- which ingest writes only when a job logs a metric name for the first time within a span of 1024 steps:
-- * regate_internal.metric_names: the names of the metrics a job has logged (fixed columns that were ever not
--   NULL, and keys of metrics). Duplicates are allowed (two sessions may record a name at once): nothing is
--   unique, so ingest never waits on another session's insert and cannot deadlock here.
-- * regate_internal.metric_spans: per job and span (step / 1024), the names logged within those steps. The
--   completion finds a metric's final value by one backward index scan of regate.local_training_metrics within
--   the newest span that holds the metric: at most the rows of 1024 steps, however long the job, and however long
--   ago a metric was last logged.
-- Both are backfilled from the candidates, which hold every (job, metric)'s final value (also after a purge).

create table regate_internal.metric_names (
    job_id uuid not null,
    metric_name text not null
);
create index metric_names_job_idx on regate_internal.metric_names (job_id, metric_name);

create table regate_internal.metric_spans (
    job_id uuid not null,
    span bigint not null,
    seen text[] not null
);
create index metric_spans_job_span_idx on regate_internal.metric_spans (job_id, span);

insert into regate_internal.metric_names (job_id, metric_name)
select distinct
    c.job_id,
    c.metric_name
from regate_internal._metric_candidates as c;

insert into regate_internal.metric_spans (job_id, span, seen)
select
    s.job_id,
    s.span,
    array_agg(s.metric_name order by s.metric_name) as seen
from (
    select distinct
        c.job_id,
        c.step / 1024 as span,
        c.metric_name
    from regate_internal._metric_candidates as c
) as s
group by s.job_id, s.span;

-- Internal objects no client may read (schema regate_internal is granted to nobody; the view was 0.1's name, which
-- 0003 kept for compatibility and sql/900_cleanup.sql drops at the end of the same migrate).
-- squawk-ignore ban-drop-view
drop view if exists regate._metric_candidates;
-- squawk-ignore ban-drop-table
drop table regate_internal._metric_candidates;

-- regate.purge_metrics loses values_deleted (the candidates it counted are gone); sql/075_retention.sql recreates it
-- and the helper whose signature changed.
-- squawk-ignore ban-drop-function
drop function if exists regate.purge_metrics(timestamptz, text, integer, bigint);
-- squawk-ignore ban-drop-function
drop function if exists regate_internal._purge_job(uuid, timestamptz, bigint, bigint);

revoke all on regate_internal.metric_names, regate_internal.metric_spans from public;

-- The checks of a verdict are written once and read whole: stored uncompressed (pglz on every completion cost
-- more than the space it saved; docs/performance.md). Applies to rows written from now on.
alter table regate.validation_results alter column checks set storage external;
