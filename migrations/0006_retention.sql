-- 0006_retention: the retention of raw metric rows (regate.purge_metrics, sql/075_retention.sql).
-- * regate_internal.metric_purges: one row per job whose raw metric rows a purge deleted (complete) or is deleting
--   (a job larger than one call's batch_rows takes several calls): when, by whom, the cutoff it was purged under,
--   how many rows went and how many stayed (the rows that carry the job's final values). The next purge skips a
--   job whose purge is complete by its primary key. No foreign key to the job on purpose: a TRUNCATE ... CASCADE
--   of a regate table would then reach this table and fail on its privileges (42501) before regate's own guards
--   answer (RG006, RG003, 42501 as documented); a row of a deleted job (one without verdicts) stays, unused.
-- * purging_xact is the one door of the append-only guard of regate.local_training_metrics
--   (regate_internal._metrics_append_only): a metric row of a job may be deleted only in the transaction this
--   column names, and regate.purge_metrics sets it and clears it again around its own delete, within one call.
--   Schema regate_internal is granted to nobody: no client, admins included, can write it, so no client can open
--   the door (a setting would not do: any client can set one).

create table regate_internal.metric_purges (
    job_id uuid primary key,
    completed_before timestamptz not null,
    complete boolean not null default false,
    rows_deleted bigint not null default 0,
    rows_kept bigint,
    purging_xact xid8,
    purged_by text not null default session_user,
    started_at timestamptz not null default now(),
    purged_at timestamptz
);
