"""`regate-db demo` as a user runs it: real processes against real databases."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg

from regate_db.resources import default_source
from tests import conftest
from tests.helpers import REPO, run

ANSI = re.compile(r"\x1b\[[0-9;]*m")
RELATIVE_REGRESSION = "eval_loss 0.48 is worse than baseline 0.42 by 14.3%, tolerance 5%"

LATEST = default_source().versioned()[-1].version


def verdicts(stdout: str) -> list[tuple[str, str]]:
    """(run label, validation_status) of every verdict line, in order."""
    return re.findall(r"^  (good run|regressed run): validation_status = (\w+)", stdout, flags=re.MULTILINE)


def group_verdicts(stdout: str) -> list[tuple[str, str]]:
    """(challenger, validation_status of its run group) of act 4, in order."""
    return re.findall(r"^  (winner|loser|inconclusive): validation_status = (\w+)", stdout, flags=re.MULTILINE)


def job_ids(stdout: str) -> list[str]:
    return re.findall(r"job ([0-9a-f]{8})  step", stdout)


def test_demo_passes_the_good_run_fails_then_blocks_the_regressed_one(
    empty_db: str, cli_env: dict[str, str], regate_cmd: list[str]
) -> None:
    first = run(regate_cmd, cli_env, "--dsn", empty_db, "demo")
    assert first.returncode == 0, first.stderr
    out = first.stdout
    assert f"schema regate {LATEST} installed in" in out
    assert verdicts(out) == [
        ("good run", "passed"),
        ("regressed run", "failed"),  # warn-only: recorded, not blocked
        ("good run", "passed"),
        ("regressed run", "blocked"),  # {"blockOnCriticalFailures": true}
    ]
    warn_only, blocking = out.split('2. blocking (job config {"blockOnCriticalFailures": true})')
    assert "1/4 checks passed, not blocked)" in warn_only
    assert "1/4 checks passed, BLOCKED)" in blocking
    assert RELATIVE_REGRESSION in warn_only and RELATIVE_REGRESSION in blocking
    assert "accuracy 0.874 is below the threshold 0.89" in out
    # the aligned checks table: every row has its columns at the header's offsets
    table = [line for line in warn_only.splitlines() if line.startswith("    ")]
    header = table[0]
    assert header.split() == ["metric", "severity", "observed", "baseline", "outcome", "message"]
    assert table.count(header) == 2  # one table per verdict
    for row in (line for line in table if line != header):
        assert row[header.index("outcome") :].split()[0] in {"passed", "failed"}, row
    assert re.search(r"^    eval_loss +critical +0\.48 +0\.42 +failed +eval_loss 0\.48 is worse", out, re.MULTILINE)
    assert not ANSI.search(out), "colour codes in output that is not a terminal"
    # 3. the database refuses to deploy the blocked job; the passed one is the champion
    deploy = out.split("3. deployment: the database refuses to deploy the blocked model", 1)[1]
    assert re.search(r"-- good run: deployed\n", deploy)
    assert re.search(r"-- regressed run: refused \[RG012\]\n    deployment refused: job [0-9a-f]{8} of model", deploy)
    champion = re.search(r"champion in production \(regate.champions\): job ([0-9a-f]{8})", deploy)
    assert champion is not None and champion.group(1) == job_ids(out)[2]  # the good run of the blocking mode
    # 4. challengers of that champion, 5 seeds each: one group verdict on the interval of the mean
    act4 = out.split("4. champion vs challengers", 1)[1]
    assert f"below the champion in production (job {champion.group(1)}, accuracy 0.915)" in act4
    assert group_verdicts(out) == [("winner", "passed"), ("loser", "blocked"), ("inconclusive", "warning")]
    assert "for the group: accuracy passed, not blocked)" in act4
    assert "for the group: accuracy failed, BLOCKED)" in act4
    assert "for the group: accuracy inconclusive, not blocked)" in act4
    flat = " ".join(act4.split())  # the messages are wrapped
    assert re.search(r"accuracy 0\.925 ± 0\.00\d+ \(n=5\) passes at the worse end of its 95% interval", flat)
    assert re.search(r"accuracy 0\.884 ± 0\.00\d+ \(n=5\) is significantly worse: even the better end", flat)
    assert re.search(r"accuracy 0\.908 ± 0\.01\d+ \(n=5\) is inconclusive: the worse end of its 95% interval", flat)
    assert flat.count(f"(champion in production: job {champion.group(1)})") == 3
    assert len(out.splitlines()) < 80, "the demo output should stay compact"
    assert max(len(line) for line in out.splitlines()) < 125, "the demo output should fit a wide terminal"

    second = run(regate_cmd, cli_env, "--dsn", empty_db, "demo")
    assert second.returncode == 0, second.stderr
    assert f"schema regate {LATEST} up to date in" in second.stdout
    assert verdicts(second.stdout) == verdicts(out)
    assert group_verdicts(second.stdout) == group_verdicts(out)
    assert not set(job_ids(out)) & set(job_ids(second.stdout)), "a rerun must use fresh job ids"

    with psycopg.connect(empty_db) as conn:
        rows = conn.execute(
            "select validation_status, count(*) from regate.local_training_jobs"
            " where model_name = 'sentiment-bert' group by 1 order by 1"
        ).fetchall()
        # per demo: 2 + 5 passed (good runs, the winner's 5 seeds), 1 + 5 blocked (the loser's seeds), 1 failed,
        # 5 warning (the inconclusive challenger's seeds)
        assert rows == [("blocked", 12), ("failed", 2), ("passed", 14), ("warning", 10)]
        groups = conn.execute(
            "select count(distinct run_group), count(*) filter (where run_group_size = 5)"
            " from regate.local_training_jobs where model_name = 'sentiment-bert' and run_group is not null"
        ).fetchone()
        assert groups == (6, 30), "each demo run uses new run groups"
        baselines = conn.execute(
            "select count(*) filter (where is_active), count(*) from regate.model_baselines"
            " where model_name = 'sentiment-bert'"
        ).fetchone()
        assert baselines == (5, 10)  # the rerun superseded the first run's baselines and kept them as history
        champion_baseline = conn.execute(
            "select model_version, reference, environment from regate.model_baselines"
            " where model_name = 'sentiment-bert' and is_active and reference <> 'fixed'"
        ).fetchone()
        assert champion_baseline == ("3.0.0", "champion", "production")


def _normalise(text: str) -> list[str]:
    schema_line = r"schema regate \S+ (installed|upgraded|updated|up to date) in \S+ \(PostgreSQL \d+\.\d+\)"
    text = re.sub(schema_line, "schema ...", text)
    text = re.sub(r"job [0-9a-f]{8}", "job ID", text)
    text = re.sub(r"result #\d+ in [\d.]+ ms", "result #N", text)
    text = re.sub(r"deploy\('[0-9a-f]{8}\.\.\.'", "deploy('ID...'", text)
    text = re.sub(r"verdict #\d+", "verdict #N", text)
    return [line.rstrip() for line in text.strip().splitlines()]


def test_readme_shows_the_real_demo_output(empty_db: str, cli_env: dict[str, str], regate_cmd: list[str]) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Demo\n", 1)[1].split("\n## ", 1)[0]
    shown = section.split("```text\n", 1)[1].split("```", 1)[0]
    proc = run(regate_cmd, cli_env, "--dsn", empty_db, "demo")
    assert proc.returncode == 0, proc.stderr
    assert _normalise(shown) == _normalise(proc.stdout), "README's demo output is stale: paste the current one"


def test_demo_uses_the_embedded_server_by_default(
    tmp_path: Path, cli_env: dict[str, str], regate_cmd: list[str]
) -> None:
    root = conftest.test_root() / f"demo-{tmp_path.name}"
    env = {**cli_env, "REGATE_EMBEDDED_DIR": str(root)}
    try:
        proc = run(regate_cmd, env, "demo")
        assert proc.returncode == 0, proc.stderr
        assert f"embedded PostgreSQL: data in {root / 'pgdata'}" in proc.stderr
        kept = "the embedded PostgreSQL keeps running, with the demo's data: stop it with `regate-db embedded stop`"
        assert kept in proc.stderr
        assert [s for _, s in verdicts(proc.stdout)] == ["passed", "failed", "passed", "blocked"]
        assert [s for _, s in group_verdicts(proc.stdout)] == ["passed", "blocked", "warning"]
    finally:
        run(regate_cmd, env, "embedded", "stop")
        import shutil

        shutil.rmtree(root, ignore_errors=True)
