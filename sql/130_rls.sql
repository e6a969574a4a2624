-- Row-level security: a tenant sees and changes only its own jobs, metrics and verdicts; an admin sees all.
-- Enabled and forced (the owner of the tables is bound too: regate-db's SECURITY DEFINER code sees only what the
-- session may see). The policies key on regate.current_identity() and regate.is_admin(), each evaluated once per
-- statement (an uncorrelated subquery is an InitPlan). Re-created as a whole on every change.
--
-- Error codes raised here: none (a row outside the policies is invisible; writing one fails with 42501).

alter table regate.local_training_jobs enable row level security;
alter table regate.local_training_jobs force row level security;
drop policy if exists owner_or_admin on regate.local_training_jobs;
create policy owner_or_admin on regate.local_training_jobs
using (owner_id = (select regate.current_identity()) or (select regate.is_admin()))
with check (owner_id = (select regate.current_identity()) or (select regate.is_admin()));

-- A metric row belongs to its job: visible and insertable when the job is (the job's own policy applies inside
-- the subquery). An index lookup per row, like the foreign key's. The same test both ways, in two orders (OR
-- evaluates left to right and stops at the first true): a read asks regate.is_admin() first, once per query, so
-- that an admin's scan skips the lookup on every row; an insert looks up the job first, so that a tenant logging
-- into its own job (the job's policy: current_identity() matches) never runs is_admin(): a third of what row-level
-- security cost a tenant's one-row INSERT.
alter table regate.local_training_metrics enable row level security;
alter table regate.local_training_metrics force row level security;
drop policy if exists owner_or_admin on regate.local_training_metrics;
create policy owner_or_admin on regate.local_training_metrics
using (
    (select regate.is_admin())
    or exists (select from regate.local_training_jobs as j where j.id = local_training_metrics.job_id)
)
with check (
    exists (select from regate.local_training_jobs as j where j.id = local_training_metrics.job_id)
    or (select regate.is_admin())
);

alter table regate.validation_results enable row level security;
alter table regate.validation_results force row level security;
drop policy if exists owner_or_admin on regate.validation_results;
create policy owner_or_admin on regate.validation_results
using (owner_id = (select regate.current_identity()) or (select regate.is_admin()))
with check (owner_id = (select regate.current_identity()) or (select regate.is_admin()));

-- Alerts: an admin reads all; others the alerts of their own jobs and verdicts, and the global ones (policy
-- changes, the kill switch: public through regate.gate_policies and regate.gate_status anyway). Not forced: only
-- regate-db's own code (the owner) writes the outbox.
alter table regate.alerts enable row level security;
drop policy if exists owner_or_admin on regate.alerts;
create policy owner_or_admin on regate.alerts
for select
using (owner_id is null or owner_id = (select regate.current_identity()) or (select regate.is_admin()));
