-- The verdict: the checks of a job's final metrics against the applicable baselines become one recorded row of
-- regate.validation_results, and the blocking rule says whether it blocks deployment. One code path,
-- regate_internal._gate, serves the completion trigger, validate_training_results and run_gate.
--
-- Error codes raised here (see docs/sql-reference.md):
--   RG005  should_block_deployment's config breaks a rule
--   RG010  a trigger regate-db did not install sits on a table the gate reads or writes

-- regate_internal._contention(sqlstate): whether an error inside validation means another transaction held what
-- the gate needed (a lock wait beyond lock_timeout, a deadlock). Such an error blocks whatever failOpen says:
-- contention must never turn into a pass.
create or replace function regate_internal._contention(p_sqlstate text)
returns boolean
language sql
immutable
parallel safe
security invoker
as $$
    select coalesce(p_sqlstate in ('55P03', '40P01'), false)
$$;

-- regate_internal._blocks(result, config): whether a verdict blocks deployment under an effective gate config:
-- a critical failure with blockOnCriticalFailures, no baselines when they are required and blocking is on, a
-- validation error when failOpen is false, and always an error caused by contention.
create or replace function regate_internal._blocks(p_result regate.validation_results, p_config jsonb)
returns boolean
language sql
immutable
security invoker
as $$
    select case p_result.status
        when 'error' then
            not (p_config #>> '{regressionGateConfig,failOpen}')::boolean
            or regate_internal._contention(p_result.error_sqlstate)
        when 'failed' then (p_config ->> 'blockOnCriticalFailures')::boolean
        when 'no_baselines' then
            (p_config ->> 'blockOnCriticalFailures')::boolean
            and (p_config #>> '{regressionGateConfig,requireBaselines}')::boolean
        else false
    end
$$;

-- regate.should_block_deployment(result regate.validation_results, config jsonb) returns boolean: whether a
-- verdict blocks deployment under a gate config (a job config or an effective one; the admins' policy of the
-- verdict's model applies as for a job): see regate_internal._blocks. Raises RG005 for a config that breaks a rule.
create or replace function regate.should_block_deployment(result regate.validation_results, config jsonb)
returns boolean
language sql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
    select regate_internal._blocks(
        should_block_deployment.result,
        (regate_internal._effective(should_block_deployment.config, (should_block_deployment.result).model_name)).config
    )
$$;

-- regate_internal._job_validation_status(result, config): the job's validation_status for a verdict.
create or replace function regate_internal._job_validation_status(p_result regate.validation_results, p_config jsonb)
returns text
language sql
immutable
security invoker
as $$
    select case
        when p_result.blocked then 'blocked'
        when p_result.status = 'no_baselines' then
            case when (p_config #>> '{regressionGateConfig,requireBaselines}')::boolean then 'failed' else 'passed' end
        else p_result.status
    end
$$;

-- regate_internal._checks_fdr(model, version, metrics_to_validate, metrics, steps, job_id): the checks of
-- regate_internal._checks, with the Benjamini-Hochberg procedure applied to the members of each family baseline
-- that asks for it (benjamini_hochberg): among the members checked over repeated runs (those with a p_value), a
-- significant regression stays `failed` only when the procedure rejects it at level (1 - confidence) / 2 over the
-- family's m members; the others become `inconclusive`. Controls the share of false alarms among many slices.
-- regate_internal._evaluate calls it only when an applicable baseline asks for the procedure, and otherwise reads
-- regate_internal._checks directly (inlined into its own query: no result set is materialised in between).
create or replace function regate_internal._checks_fdr(
    p_model_name text, p_model_version text, p_only text[], p_metrics jsonb, p_steps jsonb, p_job_id uuid
)
returns table (check_json jsonb, metric_name text, severity text, outcome text, effect text)
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
-- One plan per session for each query below (their parameters change nothing a plan depends on).
set plan_cache_mode = force_generic_plan
as $$
begin
    return query
    with c as (
        select
            x.check_json,
            x.metric_name,
            x.severity,
            x.outcome,
            x.effect,
            row_number() over (order by x.metric_name, x.severity) as ord,
            (x.check_json ->> 'p_value')::double precision as p,
            coalesce(x.check_json ? 'fdr' and x.check_json ->> 'p_value' is not null, false) as tested,
            x.check_json ->> 'baseline_id' as bid,
            (1 - (x.check_json ->> 'confidence')::double precision) / 2 as q
        from regate_internal._checks(p_model_name, p_model_version, p_only, p_metrics, p_steps, p_job_id) as x
    ),

    ranked as (
        select
            c.*,
            row_number() over (partition by c.bid, c.tested order by c.p, c.ord) as k,
            count(*) over (partition by c.bid, c.tested) as m
        from c
    ),

    cut as (
        select
            ranked.*,
            max(case when ranked.tested and ranked.p <= ranked.k * ranked.q / ranked.m then ranked.p end)
                over (partition by ranked.bid, ranked.tested) as p_star
        from ranked
    ),

    adjusted as (
        select
            cut.*,
            cut.tested and cut.outcome = 'failed' and (cut.p_star is null or cut.p > cut.p_star) as spared
        from cut
    )

    select
        case when a.spared then
            a.check_json || jsonb_build_object(
                'outcome', 'inconclusive',
                'message', replace(
                    a.check_json ->> 'message', 'is significantly worse:',
                    format(
                        'would be significantly worse alone (p = %s), but not among the %s members of %s'
                        ' (Benjamini-Hochberg):', regate_internal._fmt(a.p), a.m, a.check_json ->> 'family'
                    )
                )
            )
        else a.check_json end,
        a.metric_name,
        a.severity,
        case when a.spared then 'inconclusive' else a.outcome end,
        case when a.spared then 'inconclusive' else a.effect end
    from adjusted as a
    order by a.ord;
end;
$$;

-- regate_internal._evaluate(verdict, metrics, steps, required): the verdict (not yet recorded) for final metrics
-- against the applicable baselines; `verdict` brings the job, model, version and effective config. p_required
-- lists metrics that must be present (run_gate). Data problems become checks, never errors.
create or replace function regate_internal._evaluate(
    p_verdict regate.validation_results,
    p_metrics jsonb,
    p_steps jsonb,
    p_required text[]
)
returns regate.validation_results
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
set extra_float_digits = 3
-- One plan per session (the checks query, inlined, takes milliseconds to plan; its parameters change nothing a
-- plan depends on).
set plan_cache_mode = force_generic_plan
-- Without Memoize nodes in the checks query: their keys (a baseline's metric and value) barely repeat, and each costs
-- its set-up on every run (1% of a completion's instructions, measured).
set enable_memoize = off
as $$
declare
    v_gc jsonb := p_verdict.config -> 'regressionGateConfig';
    v_require boolean := coalesce((v_gc ->> 'requireBaselines')::boolean, false);
    v_inconclusive_fails boolean := coalesce((v_gc ->> 'inconclusiveFails')::boolean, false);
    v_only text [];
    v_result regate.validation_results := p_verdict;
    v_checked text [];
    v_critical_checked text [];
    v_critical_failed boolean;
    v_warning_failed boolean;
    v_extra jsonb;
    v_fdr boolean;
begin
    if jsonb_typeof(v_gc -> 'metricsToValidate') = 'array' then
        v_only := array(select jsonb_array_elements_text(v_gc -> 'metricsToValidate'));
    end if;
    -- The common case: no applicable baseline asks for Benjamini-Hochberg, and the checks query is inlined here. The
    -- test may say yes for a baseline that does not apply (another version's overrides it, or metricsToValidate
    -- leaves it out): the procedure then spares nothing, and the verdict is the same by the slower path. Without
    -- _applicable_baselines' sort, it costs a fifth as much (4% of a completion's instructions, measured).
    v_fdr := exists (
        select from regate.model_baselines as b
        where
            b.benjamini_hochberg and b.is_active and b.model_name = p_verdict.model_name
            and (b.model_version = p_verdict.model_version or b.model_version is null)
    );
    -- All applicable baselines in one statement: one snapshot; the verdict's inputs come with it. The array is
    -- built as to_jsonb(array_agg(...)): jsonb_agg re-encodes every element, at about three times the cost.
    select
        coalesce(to_jsonb(array_agg(c.check_json)), '[]'::jsonb),
        coalesce(array_agg(c.metric_name), '{}'),
        coalesce(array_agg(c.metric_name) filter (where c.severity = 'critical'), '{}'),
        coalesce(bool_or(c.severity = 'critical' and (
            c.effect = 'fail' or (c.effect = 'inconclusive' and v_inconclusive_fails)
        )), false),
        coalesce(bool_or(
            c.effect = 'warn' or (c.effect = 'inconclusive' and not v_inconclusive_fails)
            or (c.effect in ('fail', 'inconclusive') and c.severity = 'warning')
        ), false)
    into v_result.checks, v_checked, v_critical_checked, v_critical_failed, v_warning_failed
    from (
        select x.*
        from regate_internal._checks(
            p_verdict.model_name, p_verdict.model_version, v_only, p_metrics, p_steps, p_verdict.job_id
        ) as x
        where not v_fdr
        union all
        select x.*
        from regate_internal._checks_fdr(
            p_verdict.model_name, p_verdict.model_version, v_only, p_metrics, p_steps, p_verdict.job_id
        ) as x
        where v_fdr
    ) as c;
    -- Critical checks no baseline stands behind: a listed metric without baseline (requireBaselines), a
    -- metric required by run_gate that was not logged (unless a critical check already fails it).
    if (v_require and v_only is not null) or p_required is not null then
        select coalesce(jsonb_agg(r.check_json order by r.name), '[]'::jsonb)
        into v_extra
        from (
            select
                n.name,
                regate_internal._unbaselined_check(
                    n.name,
                    case when v_require and n.name = any(v_only) then 'no_baseline' else 'missing' end,
                    regate_internal._jsonb_float8(p_metrics -> n.name),
                    (p_steps ->> n.name)::bigint
                ) as check_json
            from (
                select unnest(case when v_require then v_only end) as name
                union
                select unnest(p_required) as name
            ) as n
            where
                (v_require and n.name = any(v_only) and not n.name = any(v_checked))
                or (
                    n.name = any(p_required) and not coalesce(p_metrics ? n.name, false)
                    and not n.name = any(v_critical_checked)
                )
        ) as r;
        v_result.checks := v_result.checks || v_extra;
        v_critical_failed := v_critical_failed or jsonb_array_length(v_extra) > 0;
    end if;
    v_result.status := case
        when jsonb_array_length(v_result.checks) = 0 then 'no_baselines'
        when v_critical_failed then 'failed'
        when v_warning_failed then 'warning'
        else 'passed'
    end;
    v_result.metrics := p_metrics;
    v_result.blocked := regate_internal._blocks(v_result, v_result.config);
    return v_result;
end;
$$;

-- regate_internal._record(result, started): insert a verdict, with its duration and who caused it (the login,
-- and the end user when the identity is a gateway's claim); returns the stored row.
create or replace function regate_internal._record(p_result regate.validation_results, p_started timestamptz)
returns regate.validation_results
language plpgsql
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_identity text := regate.current_identity();
    v_row regate.validation_results;
begin
    insert into regate.validation_results (
        job_id, model_name, model_version, status, blocked, metrics, checks, config, source, error_sqlstate,
        error_message, duration_ms, owner_id, caused_by, end_user, policy_id, policy_version, run_group
    )
    values (
        p_result.job_id, p_result.model_name, p_result.model_version, p_result.status, p_result.blocked,
        p_result.metrics, coalesce(p_result.checks, '[]'::jsonb), p_result.config, p_result.source,
        p_result.error_sqlstate, p_result.error_message,
        extract(epoch from clock_timestamp() - p_started) * 1000,
        coalesce(p_result.owner_id, v_identity), session_user,
        case when v_identity is distinct from session_user then v_identity end,
        p_result.policy_id, p_result.policy_version, p_result.run_group
    )
    returning * into v_row;
    return v_row;
end;
$$;

-- regate_internal._gate(verdict, metrics, required): validate and record; the one code path of the trigger and
-- the explicit functions. `verdict` brings job_id, model_name, model_version, the effective config, source,
-- owner_id and the policy; with p_metrics NULL the job's final metrics are read. A failure inside validation
-- never raises: it is recorded as an 'error' verdict (blocked when failOpen is false, and always for
-- contention) with the SQLSTATE and message. Validation waits at most 1 s for a lock (lock_timeout). Recording
-- is outside the caught block: a verdict that cannot be written fails the statement, it never becomes a pass.
create or replace function regate_internal._gate(
    p_verdict regate.validation_results, p_metrics jsonb, p_required text[]
)
returns regate.validation_results
language plpgsql
security invoker
set search_path = pg_catalog, pg_temp
set lock_timeout = '1s'
as $$
declare
    v_started timestamptz := clock_timestamp();
    v_metrics jsonb := p_metrics;
    v_steps jsonb;
    v_result regate.validation_results;
    v_only_ours boolean;
begin
    -- The catalog check, answered from this session's cached plan while only regate-db's triggers sit on the
    -- tables and the schemas are closed (see regate_internal._only_regate_triggers_when_planned); else exactly.
    select coalesce(
        (
            select true
            from regate.validation_results as r, regate.local_training_jobs as j, regate.local_training_metrics as m
            where false
        ),
        regate_internal._only_regate_triggers_when_planned(array[
            'regate.validation_results'::regclass, 'regate.local_training_jobs'::regclass,
            'regate.local_training_metrics'::regclass
        ], true)
    )
    into v_only_ours;
    if not v_only_ours then
        perform regate_internal._assert_trusted_triggers(array[
            'regate.validation_results'::regclass, 'regate.local_training_jobs'::regclass,
            'regate.local_training_metrics'::regclass
        ], true);
    end if;
    begin
        if p_metrics is null and p_verdict.job_id is not null then
            select f.metrics, f.steps into v_metrics, v_steps from regate_internal._final_metrics(p_verdict.job_id) as f;
        end if;
        v_result := regate_internal._evaluate(p_verdict, v_metrics, v_steps, p_required);
    exception when others then
        v_result := p_verdict;
        get stacked diagnostics
            v_result.error_sqlstate = returned_sqlstate,
            v_result.error_message = message_text;
        v_result.metrics := v_metrics;
        v_result.checks := '[]'::jsonb;
        v_result.status := 'error';
        v_result.blocked := regate_internal._blocks(v_result, p_verdict.config);
    end;
    return regate_internal._record(v_result, v_started);
end;
$$;

-- regate_internal._verdict(job_id, model_name, model_version, effective, source, owner_id): the fields a
-- verdict starts from (job, model, effective config, policy, source, owner), for regate_internal._gate.
create or replace function regate_internal._verdict(
    p_job_id uuid,
    p_model_name text,
    p_model_version text,
    p_config jsonb,
    p_policy_id bigint,
    p_policy_version bigint,
    p_source text,
    p_owner_id text
)
returns regate.validation_results
language plpgsql
immutable
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v regate.validation_results;
begin
    v.job_id := p_job_id;
    v.model_name := p_model_name;
    v.model_version := p_model_version;
    v.config := p_config;
    v.policy_id := p_policy_id;
    v.policy_version := p_policy_version;
    v.source := p_source;
    v.owner_id := p_owner_id;
    return v;
end;
$$;

-- regate_internal._group_metrics(job_ids): the final metrics of a group's runs, each metric as an array of the
-- runs' values in the given order (runs that never logged it left out): what a group verdict checks.
create or replace function regate_internal._group_metrics(p_jobs uuid[])
returns jsonb
language sql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
    select coalesce(jsonb_object_agg(x.name, x.runs), '{}'::jsonb)
    from (
        select m.key as name, jsonb_agg(m.value order by j.ord) as runs
        from unnest(p_jobs) with ordinality as j (id, ord)
        cross join lateral regate_internal._final_metrics(j.id) as f
        cross join lateral jsonb_each(coalesce(f.metrics, '{}'::jsonb)) as m
        group by m.key
    ) as x
$$;

-- regate_internal._group_gate(job, config, policy_id, policy_version, explicit): the verdict of the run group of
-- `job` (a run that is completing, or any run of it): its completed runs of the same model and owner, this one
-- included, checked together (source 'group', job_id NULL, run_group set). Serialised per group, so that the runs
-- completing last in concurrent transactions make exactly one verdict. Unless `explicit`, nothing happens (a
-- verdict with NULL id is returned) while fewer runs than the group's size have completed. The runs get the
-- verdict as their own: all of them for an admin or when the last run completes, else (a non-admin's explicit
-- call) only those without a verdict yet.
create or replace function regate_internal._group_gate(
    p_job regate.local_training_jobs,
    p_config jsonb,
    p_policy_id bigint,
    p_policy_version bigint,
    p_explicit boolean
)
returns regate.validation_results
language plpgsql
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_runs uuid [];
    v_verdict regate.validation_results;
    v_status text;
    v_admin boolean := regate.is_admin();
begin
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext(
        concat_ws(chr(31), 'regate.run_group', p_job.model_name, p_job.owner_id, p_job.run_group)
    ));
    -- a new snapshot after the lock: runs that completed in transactions that held it are counted
    select coalesce(array_agg(j.id order by j.completed_at, j.id), '{}') into v_runs
    from regate.local_training_jobs as j
    where
        j.model_name = p_job.model_name and j.run_group = p_job.run_group and j.owner_id = p_job.owner_id
        and j.status = 'completed' and j.id <> p_job.id;
    if p_job.status = 'completed' then
        v_runs := v_runs || p_job.id;
    end if;
    if not p_explicit and cardinality(v_runs) < p_job.run_group_size then
        raise notice 'job %: run % of % of group % of model %: the group is validated when its last run completes',
            p_job.id, cardinality(v_runs), p_job.run_group_size, p_job.run_group, p_job.model_name;
        return v_verdict;
    end if;
    v_verdict := regate_internal._verdict(
        null, p_job.model_name, p_job.model_version, p_config, p_policy_id, p_policy_version, 'group', p_job.owner_id
    );
    v_verdict.run_group := p_job.run_group;
    v_verdict := regate_internal._gate(v_verdict, regate_internal._group_metrics(v_runs), null);
    v_status := regate_internal._job_validation_status(v_verdict, p_config);
    update regate.local_training_jobs as j
    set validation_status = v_status, validation_result_id = v_verdict.id
    where
        j.id = any(v_runs) and (p_explicit or j.id <> p_job.id)
        and (v_admin or not p_explicit or j.validation_status is null);
    perform regate_internal._note_acceptance(j.id, j.model_name, j.model_version, j.completed_at,
        v_status in ('passed', 'warning'))
    from regate.local_training_jobs as j
    where j.id = any(v_runs) and (p_explicit or j.id <> p_job.id) and j.validation_result_id = v_verdict.id;
    if p_job.status = 'completed' and not p_explicit then
        perform regate_internal._note_acceptance(
            p_job.id, p_job.model_name, p_job.model_version, p_job.completed_at, v_status in ('passed', 'warning')
        );
    end if;
    return v_verdict;
end;
$$;

-- Trigger function (before insert or update, when a job enters completed): run the gate and put the verdict
-- on the row, so that the completing statement's RETURNING already shows it. SECURITY DEFINER (it reads the
-- baselines and writes verdicts), so it refuses to fire anywhere but where regate-db attached it (RG010).
create or replace function regate_internal._jobs_gate()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_eff record;
    v_result regate.validation_results;
begin
    if tg_relid <> 'regate.local_training_jobs'::regclass or tg_level <> 'ROW' or tg_when <> 'BEFORE' then
        perform regate_internal._misfired('_jobs_gate', tg_relid);
    end if;
    if lower(coalesce(pg_catalog.current_setting('regate.enabled', true), 'on')) in ('off', 'false', '0', 'no') then
        raise warning 'SET regate.enabled is not honoured: it would leak to other clients through a transaction '
            'pooler. Admins skip the gate for one transaction with regate.skip_gates_in_transaction(reason).';
    end if;
    v_eff := regate_internal._effective(new.config, new.model_name);
    if cardinality(v_eff.ignored) > 0 then
        raise notice 'job %: the gate policy that applies to model % enforces, so the config keys % were ignored (they '
            'would loosen it)', new.id, new.model_name, array_to_string(v_eff.ignored, ', ');
    end if;
    if not regate_internal._gates_on() or not (v_eff.config ->> 'enableRegressionGates')::boolean then
        new.validation_status := 'not_run';
        new.validation_result_id := null;
        perform regate_internal._note_acceptance(new.id, new.model_name, new.model_version, null, false);
        return new;
    end if;
    if new.run_group is not null then
        -- a run of a group: the group is validated when its last expected run completes (this one, or none yet)
        v_result := regate_internal._group_gate(new, v_eff.config, v_eff.policy_id, v_eff.policy_version, false);
        if v_result.id is null then
            new.validation_status := null;
            new.validation_result_id := null;
            perform regate_internal._note_acceptance(new.id, new.model_name, new.model_version, null, false);
            return new;
        end if;
    else
        v_result := regate_internal._gate(
            regate_internal._verdict(
                new.id, new.model_name, new.model_version, v_eff.config, v_eff.policy_id, v_eff.policy_version,
                'auto', new.owner_id
            ),
            null, null
        );
    end if;
    if v_result.status = 'no_baselines' then
        raise notice 'job %: no active baseline applies to model % (version %): nothing was checked',
            new.id, new.model_name, coalesce(new.model_version, 'any');
    end if;
    new.validation_status := regate_internal._job_validation_status(v_result, v_eff.config);
    new.validation_result_id := v_result.id;
    perform regate_internal._note_acceptance(
        new.id, new.model_name, new.model_version, new.completed_at, new.validation_status in ('passed', 'warning')
    );
    return new;
end;
$$;
