-- Every trigger of regate-db, grouped by table, in firing order. PostgreSQL fires the triggers of one event in
-- name order, so the number in a name is its place: _010 guards who writes, _020-_100 check and stamp the row,
-- _400 guards the gate's columns, _500 runs the gate or the deployment guard (last before the row is written, so
-- that it sees the row as it will be stored), _600 writes the alert of an event, _900 cleans up after a delete
-- or numbers the alerts at commit. The trigger functions live in the files of their concern.
--
-- Error codes raised here: none (the trigger functions raise them).

-- regate.local_training_jobs ---------------------------------------------------------------------------------

drop trigger if exists _010_identity_on_insert on regate.local_training_jobs;
create trigger _010_identity_on_insert
before insert on regate.local_training_jobs
for each row execute function regate_internal._jobs_identity();

drop trigger if exists _010_identity_on_update on regate.local_training_jobs;
create trigger _010_identity_on_update
before update on regate.local_training_jobs
for each row when (new.owner_id is distinct from old.owner_id)
execute function regate_internal._jobs_identity();

drop trigger if exists _020_frozen_when_completed on regate.local_training_jobs;
create trigger _020_frozen_when_completed
before update on regate.local_training_jobs
for each row when (old.status = 'completed')
execute function regate_internal._jobs_frozen();

drop trigger if exists _050_check_config on regate.local_training_jobs;
create trigger _050_check_config
before insert or update of config on regate.local_training_jobs
for each row execute function regate_internal._jobs_check_config();

drop trigger if exists _100_timestamps on regate.local_training_jobs;
create trigger _100_timestamps
before insert or update on regate.local_training_jobs
for each row execute function regate_internal._jobs_timestamps();

drop trigger if exists _100_keep_verdicts on regate.local_training_jobs;
create trigger _100_keep_verdicts
before delete on regate.local_training_jobs
for each row execute function regate_internal._jobs_keep_verdicts();

drop trigger if exists _100_no_truncate on regate.local_training_jobs;
create trigger _100_no_truncate
before truncate on regate.local_training_jobs
for each statement execute function regate_internal._refuse_truncate('42501');

drop trigger if exists _400_guard_verdict_on_insert on regate.local_training_jobs;
create trigger _400_guard_verdict_on_insert
before insert on regate.local_training_jobs
for each row when (new.validation_status is not null or new.validation_result_id is not null)
execute function regate_internal._jobs_guard_verdict();

drop trigger if exists _400_guard_verdict_on_update on regate.local_training_jobs;
create trigger _400_guard_verdict_on_update
before update on regate.local_training_jobs
for each row when (
    new.validation_status is distinct from old.validation_status
    or new.validation_result_id is distinct from old.validation_result_id
)
execute function regate_internal._jobs_guard_verdict();

drop trigger if exists _500_gate_on_insert on regate.local_training_jobs;
create trigger _500_gate_on_insert
before insert on regate.local_training_jobs
for each row when (new.status = 'completed')
execute function regate_internal._jobs_gate();

drop trigger if exists _500_gate_on_update on regate.local_training_jobs;
create trigger _500_gate_on_update
before update on regate.local_training_jobs
for each row when (new.status = 'completed' and old.status is distinct from 'completed')
execute function regate_internal._jobs_gate();

drop trigger if exists _900_forget_candidates on regate.local_training_jobs;
create trigger _900_forget_candidates
after delete on regate.local_training_jobs
for each row execute function regate_internal._jobs_forget_candidates();

-- regate.local_training_metrics ------------------------------------------------------------------------------

drop trigger if exists _100_append_only on regate.local_training_metrics;
create trigger _100_append_only
before update or delete on regate.local_training_metrics
for each row execute function regate_internal._metrics_append_only();

drop trigger if exists _100_no_truncate on regate.local_training_metrics;
create trigger _100_no_truncate
before truncate on regate.local_training_metrics
for each statement execute function regate_internal._refuse_truncate('RG003');

drop trigger if exists _100_ingest on regate.local_training_metrics;
create trigger _100_ingest
after insert on regate.local_training_metrics
referencing new table as new_rows
for each statement execute function regate_internal._metrics_after_insert();

-- regate.model_baselines -------------------------------------------------------------------------------------

drop trigger if exists _010_guard_writes on regate.model_baselines;
create trigger _010_guard_writes
before insert or update or delete on regate.model_baselines
for each row execute function regate_internal._guard_writes('admin', 'regate.create_baseline');

drop trigger if exists _100_check on regate.model_baselines;
create trigger _100_check
before insert or update on regate.model_baselines
for each row execute function regate_internal._baselines_check();

drop trigger if exists _100_no_truncate on regate.model_baselines;
create trigger _100_no_truncate
before truncate on regate.model_baselines
for each statement execute function regate_internal._refuse_truncate('42501');

-- regate.validation_results ----------------------------------------------------------------------------------

drop trigger if exists _010_guard_writes on regate.validation_results;
create trigger _010_guard_writes
before insert on regate.validation_results
for each row execute function regate_internal._guard_writes('owner', 'the gate records verdicts');

drop trigger if exists _100_append_only on regate.validation_results;
create trigger _100_append_only
before update or delete on regate.validation_results
for each row execute function regate_internal._results_append_only();

drop trigger if exists _100_no_truncate on regate.validation_results;
create trigger _100_no_truncate
before truncate on regate.validation_results
for each statement execute function regate_internal._refuse_truncate('RG006');

drop trigger if exists _600_alert on regate.validation_results;
create trigger _600_alert
after insert on regate.validation_results
for each row when (new.blocked or new.status in ('failed', 'error'))
execute function regate_internal._event_alert();

-- regate.gate_policies, regate.gate_policy_history, regate.gate_switch_events --------------------------------

drop trigger if exists _010_guard_writes on regate.gate_policies;
create trigger _010_guard_writes
before insert or update or delete on regate.gate_policies
for each row execute function regate_internal._guard_writes('owner', 'regate.set_policy');

drop trigger if exists _100_no_truncate on regate.gate_policies;
create trigger _100_no_truncate
before truncate on regate.gate_policies
for each statement execute function regate_internal._refuse_truncate('42501');

drop trigger if exists _010_guard_writes on regate.gate_policy_history;
create trigger _010_guard_writes
before insert or update or delete on regate.gate_policy_history
for each row execute function regate_internal._guard_writes('owner', 'regate.set_policy');

drop trigger if exists _600_alert on regate.gate_policy_history;
create trigger _600_alert
after insert on regate.gate_policy_history
for each row execute function regate_internal._event_alert();

drop trigger if exists _100_no_truncate on regate.gate_policy_history;
create trigger _100_no_truncate
before truncate on regate.gate_policy_history
for each statement execute function regate_internal._refuse_truncate('42501');

drop trigger if exists _010_guard_writes on regate.gate_switch_events;
create trigger _010_guard_writes
before insert or update or delete on regate.gate_switch_events
for each row execute function regate_internal._guard_writes('owner', 'regate.disable_gates, regate.enable_gates');

drop trigger if exists _100_no_truncate on regate.gate_switch_events;
create trigger _100_no_truncate
before truncate on regate.gate_switch_events
for each statement execute function regate_internal._refuse_truncate('42501');

drop trigger if exists _600_alert on regate.gate_switch_events;
create trigger _600_alert
after insert on regate.gate_switch_events
for each row execute function regate_internal._event_alert();

-- regate.deployments ------------------------------------------------------------------------------------------

drop trigger if exists _010_guard_writes on regate.deployments;
create trigger _010_guard_writes
before update or delete on regate.deployments
for each row execute function regate_internal._guard_writes(
    'owner', 'deployments are append-only: deploy an earlier job again to roll back'
);

drop trigger if exists _100_no_truncate on regate.deployments;
create trigger _100_no_truncate
before truncate on regate.deployments
for each statement execute function regate_internal._refuse_truncate('42501');

drop trigger if exists _500_deployment_guard on regate.deployments;
create trigger _500_deployment_guard
before insert on regate.deployments
for each row execute function regate_internal._deployments_guard();

-- regate.gate_overrides, regate.gate_override_confirmations ---------------------------------------------------

drop trigger if exists _010_guard_writes on regate.gate_overrides;
create trigger _010_guard_writes
before insert or update or delete on regate.gate_overrides
for each row execute function regate_internal._guard_writes('owner', 'regate.override_gate');

drop trigger if exists _100_no_truncate on regate.gate_overrides;
create trigger _100_no_truncate
before truncate on regate.gate_overrides
for each statement execute function regate_internal._refuse_truncate('42501');

drop trigger if exists _600_alert on regate.gate_overrides;
create trigger _600_alert
after insert on regate.gate_overrides
for each row execute function regate_internal._event_alert();

drop trigger if exists _010_guard_writes on regate.gate_override_confirmations;
create trigger _010_guard_writes
before insert or update or delete on regate.gate_override_confirmations
for each row execute function regate_internal._guard_writes('owner', 'regate.confirm_override');

drop trigger if exists _100_no_truncate on regate.gate_override_confirmations;
create trigger _100_no_truncate
before truncate on regate.gate_override_confirmations
for each statement execute function regate_internal._refuse_truncate('42501');

drop trigger if exists _600_alert on regate.gate_override_confirmations;
create trigger _600_alert
after insert on regate.gate_override_confirmations
for each row execute function regate_internal._event_alert();

-- regate.alerts -----------------------------------------------------------------------------------------------

drop trigger if exists _010_guard_writes on regate.alerts;
create trigger _010_guard_writes
before insert or update or delete on regate.alerts
for each row execute function regate_internal._guard_writes('owner', 'regate-db writes the alerts');

drop trigger if exists _100_no_truncate on regate.alerts;
create trigger _100_no_truncate
before truncate on regate.alerts
for each statement execute function regate_internal._refuse_truncate('42501');

-- Deferred: fires when the transaction commits (numbering in commit order, then NOTIFY).
drop trigger if exists _900_number_and_notify on regate.alerts;
create constraint trigger _900_number_and_notify
after insert on regate.alerts
deferrable initially deferred
for each row execute function regate_internal._alerts_number();
