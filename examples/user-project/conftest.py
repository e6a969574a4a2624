"""The team's accepted baselines, loaded once into the template every test database is cloned from."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from regate_db.pytest_plugin import TemplateSetup

ACCEPTED_BASELINES = """
select regate.create_baseline(model_name => 'sentiment-bert', metric_name => 'eval_loss',
                              baseline_value => 0.42, min_relative_change => -0.05);
select regate.create_baseline(model_name => 'sentiment-bert', metric_name => 'accuracy',
                              baseline_value => 0.91, greater_is_better => true, threshold => 0.89);
"""


@pytest.fixture(scope="session")
def regate_template_setup() -> TemplateSetup:
    def setup(conn: psycopg.Connection[Any]) -> None:
        conn.execute(ACCEPTED_BASELINES)

    return setup
