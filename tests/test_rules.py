"""One source for every rule list: where a list must appear more than once (inlined SQL on the hot path, docs,
Python), these tests prove the copies agree with the one source."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from regate_db import gates
from regate_db.errors import SQLSTATE_ERRORS
from tests.helpers import REPO

Conn = psycopg.Connection[Any]


def metric_table_columns(db: Conn) -> list[tuple[str, str]]:
    return [
        (r[0], r[1])
        for r in db.execute(
            "select a.attname, format_type(a.atttypid, a.atttypmod) from pg_attribute a"
            " where a.attrelid = 'regate.local_training_metrics'::regclass and a.attnum > 0 and not a.attisdropped"
            " order by a.attnum"
        ).fetchall()
    ]


def test_metric_columns_are_the_tables_double_precision_columns(db: Conn) -> None:
    columns = metric_table_columns(db)
    doubles = [name for name, kind in columns if kind == "double precision"]
    row = db.execute("select regate_internal._metric_columns()").fetchone()
    assert row is not None and row[0] == doubles
    # _column_metrics (inlined into the ingest trigger) lists the same columns
    values = ", ".join(f"{i + 1}.5::float8 as {name}" for i, name in enumerate(doubles))
    listed = db.execute(
        "select f.metric_name from (select null::bigint as id, null::uuid as job_id, 0::bigint as step,"
        f" {values}, '{{}}'::jsonb as metrics, now() as recorded_at) as r,"
        " regate_internal._column_metrics(r::regate.local_training_metrics) as f"
    ).fetchall()
    assert [r[0] for r in listed] == doubles
    # and so do the one-row path of the ingest trigger and the lookup of a final value (twice: value, filter)
    names = db.execute(
        "select regate_internal._column_names(r::regate.local_training_metrics) from (select null::bigint as id,"
        f" null::uuid as job_id, 0::bigint as step, {values}, '{{}}'::jsonb as metrics, now() as recorded_at) as r"
    ).fetchone()
    assert names is not None and names[0] == doubles
    # _row_value and _row_logs (the final-value lookups' value and filter) take each column and read it for its name
    for function in ("_row_value", "_row_logs"):
        args = db.execute(
            "select proargnames from pg_proc where oid = %s::regproc", (f"regate_internal.{function}",)
        ).fetchone()
        assert args is not None and args[0] == ["p_metric", *(f"p_{c}" for c in doubles), "p_metrics"]
    placeholders = ", ".join(["%s::float8"] * len(doubles))
    for i, column in enumerate(doubles):
        only = [1.5 if j == i else None for j in range(len(doubles))]
        got = db.execute(
            f"select regate_internal._row_value(%s, {placeholders}, '{{}}'),"
            f" regate_internal._row_logs(%s, {placeholders}, '{{}}')",
            (column, *only, column, *only),
        ).fetchone()
        assert got == (1.5, True), column
    for function in ("_final_value_row", "_final_metrics"):
        text = db.execute(
            "select prosrc from pg_proc where oid = %s::regproc", (f"regate_internal.{function}",)
        ).fetchone()
        assert text is not None
        passed = re.findall(r"regate_internal\._row_(?:value|logs)\([^,]+, ([^)]*)\)", text[0])
        assert passed and all([a.split(".")[-1] for a in p.split(", ")] == [*doubles, "metrics"] for p in passed)
    # and the set-based path's names of a (job, span): whether any row sets the column, then its name
    body = db.execute(
        "select prosrc from pg_proc where oid = 'regate_internal._metrics_after_insert'::regproc"
    ).fetchone()
    assert body is not None
    assert re.findall(r"bool_or\(n\.(\w+) is not null\) as (\w+)", body[0]) == [(c, c) for c in doubles]
    assert re.findall(r"case when g\.(\w+) then '(\w+)' end", body[0]) == [(c, c) for c in doubles]


def test_the_ingest_fast_test_names_every_reserved_key(db: Conn) -> None:
    """_suspicious_metrics sends every reserved key (and the empty one) to the exact rules: its list is theirs."""
    body = db.execute(
        "select prosrc from pg_proc where oid = 'regate_internal._suspicious_metrics'::regproc"
    ).fetchone()
    assert body is not None
    listed = re.search(r"\?\| array\[(.*?)\]", body[0], re.S)
    assert listed is not None
    keys = [k.strip().strip("'") for k in listed.group(1).split(",")]
    row = db.execute("select regate_internal._reserved_metric_keys()").fetchone()
    assert row is not None and sorted(keys) == sorted(["", *row[0]])
    for key in ["", *row[0]]:
        problem = db.execute("select regate_internal._suspicious_metrics(jsonb_build_object(%s::text, 1))", (key,))
        assert problem.fetchone() == (True,), key


def test_reserved_metric_keys_are_the_tables_columns(db: Conn) -> None:
    row = db.execute("select regate_internal._reserved_metric_keys()").fetchone()
    assert row is not None and sorted(row[0]) == sorted(name for name, _ in metric_table_columns(db))


json_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "nan", "", "1", "inf"]),
    st.sampled_from(["1e-400", "1e400", "-1e309", "4.9e-324", "0", "-0", "1e-300", "1e300", "2e-300"]).map(
        lambda t: ("num", t)
    ),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    value=json_values,
    key=st.sampled_from(["accuracy", "", " ", "  ", "eval_loss", "step", "bleu/de"]),
    rows=st.sampled_from([1, 3]),
)
def test_the_fast_metric_check_agrees_with_the_careful_one(db: Conn, value: Any, key: str, rows: int) -> None:
    """The ingest trigger refuses a metric (RG001) exactly when the careful rules find a problem, by its one-row
    path and by its set-based path (a statement of 3 rows), whether or not the name was logged before in its span:
    the fast jsonpath test (regate_internal._suspicious_metrics) never lets a problem through."""
    literal = value[1] if isinstance(value, tuple) else json.dumps(value)
    careful = db.execute(
        "select %s = any(regate_internal._reserved_metric_keys()) or"
        " regate_internal._metric_value_problem(%s, %s::jsonb) is not null",
        (key, key, literal),
    ).fetchone()
    assert careful is not None
    try:
        with db.transaction():
            job = db.execute("insert into regate.local_training_jobs (model_name) values ('m') returning id").fetchone()
            assert job is not None
            db.execute(  # the name logged before, with a good value, in the same span
                "insert into regate.local_training_metrics (job_id, step, metrics)"
                " select %s, 1, jsonb_build_object(%s::text, 0.5)"
                " where %s <> all(regate_internal._reserved_metric_keys()) and btrim(%s) <> ''",
                (job[0], key, key, key),
            )
            db.execute(
                "insert into regate.local_training_metrics (job_id, step, metrics)"
                " select %s, 1 + g, jsonb_build_object(%s::text, %s::jsonb) from generate_series(1, %s) as g",
                (job[0], key, literal, rows),
            )
            raise _Rollback
    except _Rollback:
        refused = False
    except psycopg.Error as exc:
        assert exc.sqlstate == "RG001", exc
        refused = True
    assert refused is careful[0], (key, literal, rows)


class _Rollback(Exception):
    """Leaves the transaction of a check, rolling back what it logged."""


def test_config_defaults_are_the_effective_config_of_an_empty_job(db: Conn) -> None:
    row = db.execute("select regate.effective_config('{}'::jsonb), regate_internal._config_defaults()").fetchone()
    assert row is not None and row[0] == row[1]


def test_every_gate_key_is_named_in_the_config_error_hint(db: Conn) -> None:
    row = db.execute("select regate_internal._config_defaults()").fetchone()
    assert row is not None
    keys = list(row[0]) + list(row[0]["regressionGateConfig"])
    with pytest.raises(psycopg.Error) as err:
        db.execute(
            "insert into regate.local_training_jobs (model_name, config) values ('m', %s)",
            (Jsonb({"enableRegressionGates": 1}),),
        )
    hint = err.value.diag.message_hint or ""
    for key in keys:
        assert key in hint, key


def test_the_cli_offers_exactly_the_policy_columns_that_can_inherit(db: Conn) -> None:
    from regate_db.cli_release import INHERITABLE

    with pytest.raises(psycopg.Error) as err:
        db.execute("select regate.set_policy('m', reset => array['no_such_column'])")
    match = re.search(r"not a column that can inherit \((.*)\)$", err.value.diag.message_primary or "")
    assert match is not None, err.value
    assert set(INHERITABLE) == set(match.group(1).split(", "))


def test_the_reason_rule_lives_in_sql_alone(db: Conn) -> None:
    with pytest.raises(psycopg.Error) as err:
        db.execute("select regate.disable_gates(' ')")
    with pytest.raises(gates.GateReasonError) as py_err:
        gates.disable_gates(db, " ")
    assert str(py_err.value) == err.value.diag.message_primary


def raised_codes() -> set[str]:
    codes: set[str] = set()
    for path in sorted((REPO / "sql").glob("*.sql")):
        codes |= set(re.findall(r"errcode = '(RG\d{3})'", path.read_text()))
        codes |= set(re.findall(r"_refuse_truncate\('(RG\d{3})'\)", path.read_text()))
    return codes


def test_every_rg_code_is_raised_mapped_and_documented() -> None:
    raised = raised_codes()
    assert len(raised) >= 11
    assert raised == set(SQLSTATE_ERRORS), "RG codes raised in sql/ and mapped in regate_db/errors.py differ"
    reference = (REPO / "docs" / "sql-reference.md").read_text()
    table = reference[reference.index("## Error codes") :]
    for code in sorted(raised):
        assert f"| `{code}` | `{SQLSTATE_ERRORS[code].__name__}` |" in table, code
    for path in sorted((REPO / "sql").glob("*.sql")):
        text = path.read_text()
        header = text[: text.index("\n\n")]
        for code in set(re.findall(r"errcode = '(RG\d{3})'", text)):
            assert code in header, f"{path.name} raises {code} but its header does not list it"


def test_every_sql_file_says_what_it_holds_and_what_it_raises() -> None:
    for path in sorted(Path(REPO / "sql").glob("*.sql")):
        text = path.read_text()
        assert text.startswith("-- "), path.name
        assert "Error codes raised here" in text[: text.index("\n\n")], path.name
