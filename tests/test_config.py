"""The gate keys of a job's config: refused when mistyped, merged over the defaults by regate.effective_config."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.helpers import message, new_job, refused

MODEL = "gpt-small"

DEFAULTS: dict[str, Any] = {
    "enableRegressionGates": True,
    "blockOnCriticalFailures": False,
    "regressionGateConfig": {"requireBaselines": False, "metricsToValidate": None, "failOpen": True},
}


def gate(**keys: Any) -> dict[str, Any]:
    return {"regressionGateConfig": keys}


BAD_CONFIGS: dict[str, tuple[dict[str, Any], str]] = {
    "enable as string": ({"enableRegressionGates": "true"}, "config.enableRegressionGates"),
    "enable as number": ({"enableRegressionGates": 1}, "config.enableRegressionGates"),
    "enable null": ({"enableRegressionGates": None}, "config.enableRegressionGates"),
    "block as string": ({"blockOnCriticalFailures": "false"}, "config.blockOnCriticalFailures"),
    "block as number": ({"blockOnCriticalFailures": 0}, "config.blockOnCriticalFailures"),
    "gate config as array": ({"regressionGateConfig": []}, "config.regressionGateConfig"),
    "gate config as string": ({"regressionGateConfig": "strict"}, "config.regressionGateConfig"),
    "gate config as boolean": ({"regressionGateConfig": True}, "config.regressionGateConfig"),
    "gate config null": ({"regressionGateConfig": None}, "config.regressionGateConfig"),
    "requireBaselines as string": (gate(requireBaselines="yes"), "config.regressionGateConfig.requireBaselines"),
    "requireBaselines null": (gate(requireBaselines=None), "config.regressionGateConfig.requireBaselines"),
    "failOpen as string": (gate(failOpen="false"), "config.regressionGateConfig.failOpen"),
    "failOpen as number": (gate(failOpen=0), "config.regressionGateConfig.failOpen"),
    "failOpen null": (gate(failOpen=None), "config.regressionGateConfig.failOpen"),
    "metrics as string": (gate(metricsToValidate="eval_loss"), "config.regressionGateConfig.metricsToValidate"),
    "metrics as object": (gate(metricsToValidate={"eval_loss": True}), "config.regressionGateConfig.metricsToValidate"),
    "metrics as boolean": (gate(metricsToValidate=True), "config.regressionGateConfig.metricsToValidate"),
    "metric as number": (gate(metricsToValidate=["eval_loss", 1]), "config.regressionGateConfig.metricsToValidate"),
    "metric empty": (gate(metricsToValidate=[""]), "config.regressionGateConfig.metricsToValidate"),
    "metric blank": (gate(metricsToValidate=["eval_loss", "  "]), "config.regressionGateConfig.metricsToValidate"),
    "metric null": (gate(metricsToValidate=[None]), "config.regressionGateConfig.metricsToValidate"),
    "metric nested": (gate(metricsToValidate=[["eval_loss"]]), "config.regressionGateConfig.metricsToValidate"),
}

INSERT_JOB = "insert into regate.local_training_jobs (model_name, config) values (%s, %s)"
# A non-object config: refused by the gate-key check (RG005) or by the table's check constraint (23514).
NON_OBJECT_CONFIG = ("RG005", "23514")


def jobs(db: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return db.execute("select id, config from regate.local_training_jobs order by id").fetchall()


def test_a_mistyped_gate_key_is_refused_at_insert_and_update(
    db: psycopg.Connection[Any], subtests: pytest.Subtests
) -> None:
    job = new_job(db)
    for label, (config, key) in BAD_CONFIGS.items():
        with subtests.test(label, config=config):
            config = {"learning_rate": 3e-4, **config}
            before = jobs(db)
            err = refused(db, "RG005", INSERT_JOB, [MODEL, Jsonb(config)])
            assert f"{key} must" in message(err)
            update = "update regate.local_training_jobs set config = %s where id = %s"
            err = refused(db, "RG005", update, [Jsonb(config), job])
            assert f"{key} must" in message(err)
            # Merged into the existing config, as a partial update would do it.
            merge = "update regate.local_training_jobs set config = config || %s where id = %s"
            err = refused(db, "RG005", merge, [Jsonb(config), job])
            assert f"{key} must" in message(err)
            assert jobs(db) == before
            # regate.effective_config refuses it too.
            err = refused(db, "RG005", "select regate.effective_config(%s)", [Jsonb(config)])
            assert f"{key} must" in message(err)


def test_a_non_object_config_is_refused(db: psycopg.Connection[Any], subtests: pytest.Subtests) -> None:
    job = new_job(db)
    for raw in ["[]", '["enableRegressionGates"]', '"strict"', "1", "true", "null"]:
        with subtests.test(config=raw):
            before = jobs(db)
            insert = "insert into regate.local_training_jobs (model_name, config) values (%s, %s::jsonb)"
            assert "config" in message(refused(db, NON_OBJECT_CONFIG, insert, [MODEL, raw]))
            update = "update regate.local_training_jobs set config = %s::jsonb where id = %s"
            assert "config" in message(refused(db, NON_OBJECT_CONFIG, update, [raw, job]))
            assert jobs(db) == before


def test_any_other_keys_and_well_typed_gate_keys_are_accepted(db: psycopg.Connection[Any]) -> None:
    configs = [
        {},
        {"learning_rate": 3e-4, "optimizer": {"name": "adamw", "betas": [0.9, 0.999]}, "tags": None, "x": "y"},
        {
            "enableRegressionGates": False,
            "blockOnCriticalFailures": True,
            "regressionGateConfig": {
                "requireBaselines": True,
                "metricsToValidate": ["eval_loss", "accuracy"],
                "failOpen": False,
            },
        },
        gate(metricsToValidate=None),
        gate(),
    ]
    for config in configs:
        db.execute(INSERT_JOB, [MODEL, Jsonb(config)])
    job = new_job(db)
    db.execute("update regate.local_training_jobs set config = %s where id = %s", [Jsonb(configs[2]), job])
    stored = db.execute("select config from regate.local_training_jobs order by created_at, id").fetchall()
    assert sorted(json.dumps(c, sort_keys=True) for (c,) in stored) == sorted(
        json.dumps(c, sort_keys=True) for c in [*configs, configs[2]]
    )


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        (
            {"blockOnCriticalFailure": True},
            "config.blockOnCriticalFailure is not a gate key: did you mean blockOnCriticalFailures?",
        ),
        ({"BlockOnCriticalFailures": True}, "did you mean blockOnCriticalFailures?"),
        ({"enableRegresionGates": False}, "did you mean enableRegressionGates?"),
        ({"enableRegressionGatess": False}, "did you mean enableRegressionGates?"),
        ({"regresionGateConfig": {}}, "did you mean regressionGateConfig?"),
        (
            {"regressionGateConfig": {"failopen": True}},
            "config.regressionGateConfig.failopen is not a gate key: did you mean failOpen?",
        ),
        ({"regressionGateConfig": {"requireBaseline": True}}, "did you mean requireBaselines?"),
        ({"regressionGateConfig": {"notes": "x"}}, "config.regressionGateConfig.notes is not a gate key (known: "),
    ],
)
def test_a_misspelt_gate_key_is_refused_with_a_suggestion(
    db: psycopg.Connection[Any], config: dict[str, Any], problem: str
) -> None:
    """Silence is the enemy of a gate: a typo in a gate key must never look like a pass."""
    with pytest.raises(psycopg.Error) as err:
        db.execute(INSERT_JOB, [MODEL, Jsonb(config)])
    assert err.value.sqlstate == "RG005"
    assert problem in str(err.value)


def effective(db: psycopg.Connection[Any], config: dict[str, Any]) -> dict[str, Any]:
    row = db.execute("select regate.effective_config(%s)", [Jsonb(config)]).fetchone()
    assert row is not None
    return {
        "enableRegressionGates": row[0]["enableRegressionGates"],
        "blockOnCriticalFailures": row[0]["blockOnCriticalFailures"],
        "regressionGateConfig": {k: row[0]["regressionGateConfig"][k] for k in DEFAULTS["regressionGateConfig"]},
    }


def test_effective_config_is_the_defaults_overridden_by_the_job(db: psycopg.Connection[Any]) -> None:
    assert effective(db, {}) == DEFAULTS
    assert effective(db, {"learning_rate": 0.1, "regressionGateConfig": {}}) == DEFAULTS
    assert effective(db, {"blockOnCriticalFailures": True, **gate(failOpen=False)}) == {
        "enableRegressionGates": True,
        "blockOnCriticalFailures": True,
        "regressionGateConfig": {"requireBaselines": False, "metricsToValidate": None, "failOpen": False},
    }
    full = {
        "enableRegressionGates": False,
        "blockOnCriticalFailures": True,
        "regressionGateConfig": {"requireBaselines": True, "metricsToValidate": ["eval_loss"], "failOpen": False},
    }
    assert effective(db, {**full, "epochs": 3}) == full
    assert effective(db, gate(metricsToValidate=None, requireBaselines=True))["regressionGateConfig"] == {
        "requireBaselines": True,
        "metricsToValidate": None,
        "failOpen": True,
    }
    # On a stored job config.
    db.execute(INSERT_JOB, [MODEL, Jsonb({**full, "epochs": 3})])
    row = db.execute("select regate.effective_config(config) from regate.local_training_jobs").fetchone()
    assert row is not None
    assert row[0]["regressionGateConfig"]["metricsToValidate"] == ["eval_loss"]
    assert row[0]["enableRegressionGates"] is False
