-- IEEE 754 helpers: doubles as JSON and back, and the arithmetic of the checks as IEEE 754 computes it (an
-- overflow gives an infinity, an underflow 0) where PostgreSQL's float8 operators raise.
--
-- These are plain SQL without SET clauses on purpose: the planner inlines them into the queries that call
-- them (the ingest trigger's, the one query that builds all checks of a verdict). Their callers are
-- SECURITY DEFINER functions that pin search_path.
--
-- Error codes raised here: none.

-- regate_internal._float8_jsonb(value): a double as JSON: a number, or the string "NaN", "Infinity" or "-Infinity"
-- (JSON has no literal for them). Stable, not immutable: the text of a double follows extra_float_digits,
-- which callers pin to 3 (bit-exact).
create or replace function regate_internal._float8_jsonb(p_value double precision)
returns jsonb
language sql
stable
parallel safe
security invoker
as $$
    select case
        when p_value = 'NaN'::float8 then '"NaN"'::jsonb
        when p_value = 'Infinity'::float8 then '"Infinity"'::jsonb
        when p_value = '-Infinity'::float8 then '"-Infinity"'::jsonb
        else to_jsonb(p_value)
    end
$$;

-- regate_internal._jsonb_float8(value): the inverse of _float8_jsonb for an accepted metric value; NULL for NULL.
create or replace function regate_internal._jsonb_float8(p_value jsonb)
returns double precision
language sql
immutable
parallel safe
security invoker
as $$
    select case jsonb_typeof(p_value)
        when 'number' then p_value::float8
        when 'string' then (p_value #>> '{}')::float8
    end
$$;

-- regate_internal._f8_add(a, b): a + b as IEEE 754 computes it: an overflow gives +/-Infinity where PostgreSQL's
-- float8 + raises. Below 2^1022 the sum cannot overflow; above it, halving both is exact and overflow of the
-- half-sum (|h| >= 2^1023) is overflow of the sum. The operand rule: an operand below 1 in magnitude is dropped
-- from the half-sum, because next to an operand of at least 2^1022 it cannot change the rounded result (one unit
-- in the last place there is 2^970) and halving it could lose its lowest bit (a subnormal).
create or replace function regate_internal._f8_add(p_a double precision, p_b double precision)
returns double precision
language sql
immutable
parallel safe
security invoker
as $$
    select case
        when abs(p_a) < 4.49423283715579e+307 and abs(p_b) < 4.49423283715579e+307 then p_a + p_b
        when p_a = 'NaN'::float8 or p_b = 'NaN'::float8 or abs(p_a) = 'Infinity'::float8
            or abs(p_b) = 'Infinity'::float8 then p_a + p_b
        when
            abs(
                case when abs(p_a) < 1 then 0 else p_a * 0.5 end + case when abs(p_b) < 1 then 0 else p_b * 0.5 end
            ) >= 8.98846567431158e+307
            then sign(p_a) * 'Infinity'::float8
        else (case when abs(p_a) < 1 then 0 else p_a * 0.5 end + case when abs(p_b) < 1 then 0 else p_b * 0.5 end) * 2
    end
$$;

-- regate_internal._f8_div_slow(n, d): n / d for magnitudes where PostgreSQL's float8 / may raise: +/-Infinity on
-- overflow, 0 on underflow, as IEEE 754 gives them. Only regate_internal._f8_div calls it, for extreme inputs.
create or replace function regate_internal._f8_div_slow(p_n double precision, p_d double precision)
returns double precision
language plpgsql
immutable
parallel safe
security invoker
as $$
begin
    return p_n / p_d;
exception when numeric_value_out_of_range then
    return case when abs(p_n) > abs(p_d) then sign(p_n) * sign(p_d) * 'Infinity'::float8 else 0::float8 end;
end;
$$;

-- regate_internal._f8_div(n, d): n / d as IEEE 754 computes it (d finite and non-zero). Ordinary magnitudes are divided
-- directly; only extreme ones take the subtransaction of _f8_div_slow.
create or replace function regate_internal._f8_div(p_n double precision, p_d double precision)
returns double precision
language sql
immutable
parallel safe
security invoker
as $$
    select case
        when p_n = 0 or abs(p_n) = 'Infinity'::float8 or p_n = 'NaN'::float8
            or (abs(p_n) between 1e-30 and 1e290 and abs(p_d) between 1e-10 and 1e290) then p_n / p_d
        else regate_internal._f8_div_slow(p_n, p_d)
    end
$$;
