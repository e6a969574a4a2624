-- Gate configuration: the gate keys of a job's config (one list, with their defaults), the rules a config must
-- follow, the admins' policies per model, and the effective config that a validation runs with.
--
-- Precedence, lowest first: the defaults < the default policy (model_name NULL) < the model's policy < the job's
-- config; but when the policy that applies enforces, the job's config may only tighten it (turn blocking on, fail
-- closed, require baselines, add metrics): loosening keys are ignored, never an error. The kill switch
-- (080_switch.sql) beats everything.
--
-- Error codes raised here (see docs/sql-reference.md):
--   RG005  a job's config (or a policy) breaks a rule: a gate key of the wrong type, an unknown key inside
--          regressionGateConfig, a top-level key that is a near-miss of a gate key
--   42501  a non-admin called set_policy; a client wrote regate.gate_policies directly

-- regate_internal._config_defaults(): the gate keys and their built-in defaults: the one list of gate keys.
-- A boolean default makes the key a boolean; metricsToValidate is an array of names or null (every baselined
-- metric).
create or replace function regate_internal._config_defaults()
returns jsonb
language sql
immutable
parallel safe
security invoker
as $$
    select '{"enableRegressionGates": true, "blockOnCriticalFailures": false,
             "regressionGateConfig": {"requireBaselines": false, "metricsToValidate": null, "failOpen": true,
                                      "inconclusiveFails": false}}'::jsonb
$$;

-- regate_internal._near_miss(a, b): whether a and b differ only in case, or by one letter missing, extra,
-- replaced or swapped with its neighbour ('blockOnCriticalFailure', 'enableregressiongates', 'failopen').
create or replace function regate_internal._near_miss(p_a text, p_b text)
returns boolean
language plpgsql
immutable
parallel safe
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_a text := lower(p_a);
    v_b text := lower(p_b);
    v_i integer := 1;
begin
    if abs(length(v_a) - length(v_b)) > 1 then
        return false;
    end if;
    if v_a = v_b then
        return true;
    end if;
    while v_i <= least(length(v_a), length(v_b)) and substr(v_a, v_i, 1) = substr(v_b, v_i, 1) loop
        v_i := v_i + 1;
    end loop;
    if length(v_a) = length(v_b) then
        return substr(v_a, v_i + 1) = substr(v_b, v_i + 1)
            or (
                substr(v_a, v_i, 1) = substr(v_b, v_i + 1, 1) and substr(v_a, v_i + 1, 1) = substr(v_b, v_i, 1)
                and substr(v_a, v_i + 2) = substr(v_b, v_i + 2)
            );
    elsif length(v_a) > length(v_b) then
        return substr(v_a, v_i + 1) = substr(v_b, v_i);
    end if;
    return substr(v_a, v_i) = substr(v_b, v_i + 1);
end;
$$;

-- regate_internal._unknown_key_problem(path, key, known): the sentence for a key that is not a gate key at a
-- level where only gate keys are allowed (known_only) or that is a near-miss of one; NULL when it is neither.
create or replace function regate_internal._unknown_key_problem(
    p_path text, p_key text, p_known text[], p_known_only boolean
)
returns text
language plpgsql
immutable
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_match text;
begin
    select k into v_match from unnest(p_known) as k where regate_internal._near_miss(p_key, k) limit 1;
    if v_match is not null then
        return format('%s%s is not a gate key: did you mean %s?', p_path, p_key, v_match);
    elsif p_known_only then
        return format('%s%s is not a gate key (known: %s)', p_path, p_key, array_to_string(p_known, ', '));
    end if;
    return null;
end;
$$;

-- regate_internal._gate_config_problem(config): NULL when the gate keys of a job config follow the rules, else
-- a sentence naming the key and the rule. Other top-level keys are training parameters and stay allowed,
-- unless they are a near-miss of a gate key; inside regressionGateConfig only its gate keys are allowed.
create or replace function regate_internal._gate_config_problem(p_config jsonb)
returns text
language plpgsql
immutable
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_defaults jsonb := regate_internal._config_defaults();
    v_known text [];
    v_key text;
    v_value jsonb;
    v_item jsonb;
    v_problem text;
begin
    if p_config is null or jsonb_typeof(p_config) <> 'object' then
        return format('config must be a JSON object, got %s', coalesce(jsonb_typeof(p_config), 'NULL'));
    end if;
    -- Only the gate keys and the keys that could be a near-miss of one (at most one letter longer or shorter) reach
    -- the loop: a job's other keys (its hyperparameters) are filtered out by the query, in jsonb's key order.
    for v_key, v_value in
        select e.key, e.value
        from jsonb_each(p_config) as e
        where v_defaults ? e.key or length(e.key) between 19 and 24
    loop
        if v_defaults ? v_key then
            if jsonb_typeof(v_defaults -> v_key) = 'boolean' and jsonb_typeof(v_value) <> 'boolean' then
                return format('config.%s must be a boolean (true or false), got %s', v_key, v_value);
            elsif jsonb_typeof(v_defaults -> v_key) = 'object' and jsonb_typeof(v_value) <> 'object' then
                return format('config.%s must be a JSON object, got %s', v_key, v_value);
            end if;
        else
            v_problem := regate_internal._unknown_key_problem(
                'config.', v_key, array(select jsonb_object_keys(v_defaults)), false
            );
            if v_problem is not null then
                return v_problem;
            end if;
        end if;
    end loop;
    if not p_config ? 'regressionGateConfig' then
        return null;
    end if;
    v_defaults := v_defaults -> 'regressionGateConfig';
    v_known := array(select jsonb_object_keys(v_defaults));
    for v_key, v_value in select e.key, e.value from jsonb_each(p_config -> 'regressionGateConfig') as e loop
        if not v_key = any(v_known) then
            return regate_internal._unknown_key_problem('config.regressionGateConfig.', v_key, v_known, true);
        elsif jsonb_typeof(v_defaults -> v_key) = 'boolean' and jsonb_typeof(v_value) <> 'boolean' then
            return format('config.regressionGateConfig.%s must be a boolean (true or false), got %s', v_key, v_value);
        elsif v_key = 'metricsToValidate' and jsonb_typeof(v_value) <> 'null' then
            if jsonb_typeof(v_value) <> 'array' then
                return format(
                    'config.regressionGateConfig.metricsToValidate must be an array of metric names, got %s', v_value
                );
            end if;
            for v_item in select a.value from jsonb_array_elements(v_value) as a loop
                if jsonb_typeof(v_item) <> 'string' or btrim(v_item #>> '{}') = '' then
                    return format(
                        'config.regressionGateConfig.metricsToValidate must hold non-empty strings, got %s', v_item
                    );
                end if;
            end loop;
        end if;
    end loop;
    return null;
end;
$$;

-- regate_internal._check_config(config): raise RG005 naming the key and the rule when a job config breaks one.
create or replace function regate_internal._check_config(p_config jsonb)
returns void
language plpgsql
immutable
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_problem text := regate_internal._gate_config_problem(p_config);
begin
    if v_problem is not null then
        raise exception using
            errcode = 'RG005',
            message = v_problem,
            hint = 'Gate keys: enableRegressionGates, blockOnCriticalFailures (booleans); regressionGateConfig: '
            || '{requireBaselines, failOpen, inconclusiveFails (booleans), metricsToValidate (array of names)}.';
    end if;
end;
$$;

-- regate_internal._effective(config, model_name): the effective gate config of a job of the model (same shape as
-- the defaults), the policy row that applied (NULLs without one) and the job config keys that an enforcing
-- policy ignored because they would loosen it. Raises RG005 for a config that breaks a rule.
create or replace function regate_internal._effective(
    p_config jsonb,
    p_model_name text,
    out config jsonb,
    out policy_id bigint,
    out policy_version bigint,
    out ignored text[]
)
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
-- PL/pgSQL, not SQL: it runs on every completion, and PostgreSQL before 18 re-plans a SQL function per call.
declare
    v_job jsonb := coalesce(p_config, '{}'::jsonb);
    v_gc jsonb;
    v_default regate.gate_policies;
    v_model regate.gate_policies;
    v_enforce boolean;
    v_enable boolean;
    v_block boolean;
    v_require boolean;
    v_fail_open boolean;
    v_inconclusive boolean;
    v_metrics text [];
    v_job_metrics text [];
begin
    perform regate_internal._check_config(v_job);
    v_gc := coalesce(v_job -> 'regressionGateConfig', '{}'::jsonb);
    ignored := '{}';
    select p.* into v_default from regate.gate_policies as p where p.model_name is null;
    select p.* into v_model from regate.gate_policies as p where p.model_name = p_model_name;
    policy_id := coalesce(v_model.id, v_default.id);
    policy_version := coalesce(v_model.version, v_default.version);
    v_enforce := coalesce(v_model.enforce, v_default.enforce, false);
    v_enable := coalesce(v_model.enable_gates, v_default.enable_gates, true);
    v_block := coalesce(v_model.block_on_critical_failures, v_default.block_on_critical_failures, false);
    v_require := coalesce(v_model.require_baselines, v_default.require_baselines, false);
    -- Under an enforcing policy a validation error blocks unless the policy says otherwise.
    v_fail_open := coalesce(v_model.fail_open, v_default.fail_open, not v_enforce);
    v_metrics := coalesce(v_model.metrics_to_validate, v_default.metrics_to_validate);
    v_inconclusive := coalesce(v_model.inconclusive_fails, v_default.inconclusive_fails, false);
    if jsonb_typeof(v_gc -> 'metricsToValidate') = 'array' then
        v_job_metrics := array(select jsonb_array_elements_text(v_gc -> 'metricsToValidate'));
    end if;

    if not v_enforce then
        v_enable := coalesce((v_job ->> 'enableRegressionGates')::boolean, v_enable);
        v_block := coalesce((v_job ->> 'blockOnCriticalFailures')::boolean, v_block);
        v_require := coalesce((v_gc ->> 'requireBaselines')::boolean, v_require);
        v_fail_open := coalesce((v_gc ->> 'failOpen')::boolean, v_fail_open);
        v_inconclusive := coalesce((v_gc ->> 'inconclusiveFails')::boolean, v_inconclusive);
        v_metrics := coalesce(v_job_metrics, v_metrics);
    else
        -- The job may only tighten: each key is taken when it tightens, listed in `ignored` when it loosens.
        if (v_job ->> 'enableRegressionGates')::boolean is distinct from null then
            if (v_job ->> 'enableRegressionGates')::boolean then
                v_enable := true;
            elsif v_enable then
                ignored := ignored || 'enableRegressionGates'::text;
            end if;
        end if;
        if (v_job ->> 'blockOnCriticalFailures')::boolean then
            v_block := true;
        elsif (v_job ->> 'blockOnCriticalFailures')::boolean = false and v_block then
            ignored := ignored || 'blockOnCriticalFailures'::text;
        end if;
        if (v_gc ->> 'requireBaselines')::boolean then
            v_require := true;
        elsif (v_gc ->> 'requireBaselines')::boolean = false and v_require then
            ignored := ignored || 'regressionGateConfig.requireBaselines'::text;
        end if;
        if (v_gc ->> 'failOpen')::boolean = false then
            v_fail_open := false;
        elsif (v_gc ->> 'failOpen')::boolean and not v_fail_open then
            ignored := ignored || 'regressionGateConfig.failOpen'::text;
        end if;
        if (v_gc ->> 'inconclusiveFails')::boolean then
            v_inconclusive := true;
        elsif (v_gc ->> 'inconclusiveFails')::boolean = false and v_inconclusive then
            ignored := ignored || 'regressionGateConfig.inconclusiveFails'::text;
        end if;
        if v_job_metrics is not null then
            if v_metrics is null then
                ignored := ignored || 'regressionGateConfig.metricsToValidate'::text;  -- all metrics already
            else
                v_metrics := array(select distinct m from unnest(v_metrics || v_job_metrics) as m order by m);
            end if;
        end if;
    end if;
    config := jsonb_build_object(
        'enableRegressionGates', v_enable,
        'blockOnCriticalFailures', v_block,
        'regressionGateConfig', jsonb_build_object(
            'requireBaselines', v_require,
            'metricsToValidate', coalesce(to_jsonb(v_metrics), 'null'::jsonb),
            'failOpen', v_fail_open,
            'inconclusiveFails', v_inconclusive
        )
    );
end;
$$;

-- regate.effective_config(config jsonb, model_name text default null) returns jsonb: the gate config a job of
-- the model runs with: the defaults, the admins' policies and the job's gate keys (see the precedence above).
-- Raises RG005 when the config breaks a rule.
create or replace function regate.effective_config(config jsonb, model_name text default null)
returns jsonb
language sql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
    select e.config from regate_internal._effective(effective_config.config, effective_config.model_name) as e
$$;

-- regate.set_policy(model_name, enable_gates, block_on_critical_failures, require_baselines, fail_open,
-- metrics_to_validate, enforce, reset, override_requires_second_admin, inconclusive_fails) returns
-- regate.gate_policies: admins only.
-- Creates or changes the policy of a model (model_name NULL: the default policy). A NULL argument leaves that
-- column as it is; `reset` names columns to set back to NULL (inherit). override_requires_second_admin: an
-- override of a verdict of the model takes effect only once a second admin confirms it (the four-eyes rule);
-- inconclusive_fails: an inconclusive check over repeated runs counts as a failure instead of a warning.
-- Every change is a row of regate.gate_policy_history.
create or replace function regate.set_policy(
    model_name text,
    enable_gates boolean default null,
    block_on_critical_failures boolean default null,
    require_baselines boolean default null,
    fail_open boolean default null,
    metrics_to_validate text[] default null,
    enforce boolean default null,
    reset text[] default null,
    override_requires_second_admin boolean default null,
    inconclusive_fails boolean default null
)
returns regate.gate_policies
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_old regate.gate_policies;
    v_new regate.gate_policies;
    v_bad text;
    v_columns constant text [] := array[
        'enable_gates', 'block_on_critical_failures', 'require_baselines', 'fail_open', 'metrics_to_validate',
        'enforce', 'override_requires_second_admin', 'inconclusive_fails'
    ];
begin
    perform regate_internal._require_admin('set a gate policy');
    if model_name is not null and btrim(model_name) = '' then
        raise exception using errcode = 'RG005', message = 'set_policy: model_name must be NULL (the default policy) '
            'or a non-empty name';
    end if;
    select r into v_bad from unnest(coalesce(reset, '{}')) as r where not r = any(v_columns) limit 1;
    if v_bad is not null then
        raise exception using errcode = 'RG005', message = format(
            'set_policy: reset names %L, which is not a column that can inherit (%s)', v_bad,
            array_to_string(v_columns, ', ')
        );
    end if;
    if exists (select from unnest(metrics_to_validate) as m where m is null or btrim(m) = '') then
        raise exception using errcode = 'RG005', message = 'set_policy: metrics_to_validate must hold non-empty names';
    end if;
    perform regate_internal._assert_trusted_triggers(
        array['regate.gate_policies'::regclass, 'regate.gate_policy_history'::regclass], true
    );
    perform pg_advisory_xact_lock(hashtext(concat_ws(chr(31), 'regate.policy', model_name)));
    select p.* into v_old from regate.gate_policies as p where p.model_name is not distinct from set_policy.model_name;
    if v_old.id is null then
        insert into regate.gate_policies as p (model_name) values (set_policy.model_name) returning p.* into v_new;
    else
        v_new := v_old;
    end if;
    update regate.gate_policies as p
    set
        enable_gates = case
            when 'enable_gates' = any(set_policy.reset) then null
            else coalesce(set_policy.enable_gates, p.enable_gates)
        end,
        block_on_critical_failures = case
            when 'block_on_critical_failures' = any(set_policy.reset) then null
            else coalesce(set_policy.block_on_critical_failures, p.block_on_critical_failures)
        end,
        require_baselines = case
            when 'require_baselines' = any(set_policy.reset) then null
            else coalesce(set_policy.require_baselines, p.require_baselines)
        end,
        fail_open = case
            when 'fail_open' = any(set_policy.reset) then null else coalesce(set_policy.fail_open, p.fail_open)
        end,
        metrics_to_validate = case
            when 'metrics_to_validate' = any(set_policy.reset) then null
            else coalesce(set_policy.metrics_to_validate, p.metrics_to_validate)
        end,
        inconclusive_fails = case
            when 'inconclusive_fails' = any(set_policy.reset) then null
            else coalesce(set_policy.inconclusive_fails, p.inconclusive_fails)
        end,
        override_requires_second_admin = case
            when 'override_requires_second_admin' = any(set_policy.reset) then null
            else coalesce(set_policy.override_requires_second_admin, p.override_requires_second_admin)
        end,
        enforce = case
            when 'enforce' = any(set_policy.reset) then null else coalesce(set_policy.enforce, p.enforce)
        end,
        version = p.version + case when v_old.id is null then 0 else 1 end,
        updated_by = regate.current_identity(),
        updated_at = now()
    where p.id = v_new.id
    returning p.* into v_new;
    insert into regate.gate_policy_history (policy_id, model_name, version, old_values, new_values, changed_by)
    values (
        v_new.id, v_new.model_name, v_new.version,
        case when v_old.id is not null then to_jsonb(v_old) - 'updated_at' - 'updated_by' end,
        to_jsonb(v_new) - 'updated_at' - 'updated_by', regate.current_identity()
    );
    return v_new;
end;
$$;
