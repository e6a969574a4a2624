"""pgspot over the SQL that regate-db installs, with the reviewed allowlist in .pgspot-allowlist.

    python scripts/pgspot_check.py [FILE ...]      (make lint: migrations/*.sql, then sql/*.sql)

pgspot (Timescale's checker for extension scripts) reports search_path hazards: SECURITY DEFINER functions without
a pinned search_path (PS003, PS004), CREATE OR REPLACE / IF NOT EXISTS in a schema someone else may have created
first (PS002, PS007, PS010-PS015), quoted search_path settings (PS018), unqualified operators, functions and
objects (PS001, PS016, PS017), and more (`pgspot --explain PS001`). The files are checked the way
`regate-db migrate` applies them: as one stream, in the order given, after the schemas the runner creates itself
(regate_db.migrate.BOOTSTRAP_SQL), so that functions in our own schemas count as ours. Differences from the
`pgspot` command:

- the rules listed in .pgspot-allowlist are not reported (each entry must give its reason); how many findings each
  rule hid is printed, so that the allowlist stays reviewable;
- pgspot's PL/pgSQL parser fails on some valid bodies, and the pgspot command then skips the rest of the file.
  Here such a statement is checked again without its body (as `pgspot --no-plpgsql` would) and reported as
  `unparsed-plpgsql`, which fails unless the allowlist accepts it and the function pins a secure search_path.

Exit status 1 when anything not allowlisted is found.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import sys
from collections import Counter as Tally
from pathlib import Path

from pglast import ast, parse_sql
from pgspot import __version__ as pgspot_version
from pgspot.state import Counter, State
from pgspot.visitors import SQLVisitor

REPO = Path(__file__).resolve().parent.parent
ALLOWLIST = REPO / ".pgspot-allowlist"
UNPARSED = "unparsed-plpgsql"
ENTRY_RE = re.compile(r"^(?P<rule>PS\d{3}|" + UNPARSED + r")\s+(?P<reason>\S.*)$")


def read_allowlist(path: Path) -> dict[str, str]:
    """rule -> reason; '#' starts a comment line, a reason may continue on indented lines."""
    rules: dict[str, str] = {}
    last: str | None = None
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace() and last:
            rules[last] += " " + line.strip()
            continue
        m = ENTRY_RE.match(line)
        if not m:
            sys.exit(f"{path.name}:{n}: expected '<rule> <why it is safe here>', got {line!r}")
        last = m["rule"]
        rules[last] = m["reason"]
    return rules


def bootstrap_schemas() -> list[str]:
    """The schemas regate-db migrate creates before any file runs."""
    from regate_db.migrate import BOOTSTRAP_SQL

    return re.findall(r"create schema (?:if not exists )?(\w+)", BOOTSTRAP_SQL, flags=re.IGNORECASE)


class Findings(Counter):
    """pgspot's counter, also counting what the allowlist hides."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self.hidden: Tally[str] = Tally()

    def warn(self, code: str, context: str) -> None:
        if code in self.args.ignore:
            self.hidden[code] += 1
        super().warn(code, context)

    def error(self, code: str, context: str) -> None:
        if code in self.args.ignore:
            self.hidden[code] += 1
        super().error(code, context)


def _pinned(state: State, stmt: ast.RawStmt) -> bool:
    """The statement creates a function whose search_path is pinned to a secure one (pg_catalog first, pg_temp
    last): nothing pgspot's body analysis would report about unqualified names applies to its body."""
    node = stmt.stmt
    if not isinstance(node, ast.CreateFunctionStmt):
        return False
    setters = [o.arg for o in node.options or () if o.defname == "set" and o.arg.name == "search_path"]
    return len(setters) == 1 and bool(state.is_secure_searchpath(setters[0]))


def _visit(state: State, stmt: object) -> tuple[str, tuple[int, int, int, Tally[str]] | None]:
    """Visit one statement; its printed findings, or the counts to restore when pgspot failed on it."""
    counter = state.counter
    before = (counter.errors, counter.warnings, counter.unknowns, Tally(counter.hidden))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            SQLVisitor(state)(stmt)
        except Exception:
            return out.getvalue(), before
    return out.getvalue(), None


def check(paths: list[Path], allowed: dict[str, str], allowlist: Path = ALLOWLIST) -> int:
    args = argparse.Namespace(
        ignore=sorted(r for r in allowed if r != UNPARSED),
        summary_only=False,
        plpgsql=True,
        proc_without_search_path=[],
        sql_fn=[],
        ignore_lang=[],
        append=True,
    )
    counter = Findings(args)
    state = State(counter)
    state.created_schemas.extend(bootstrap_schemas())
    unparsed: list[tuple[str, bool]] = []
    failures = 0
    for path in paths:
        sql = path.read_text(encoding="utf-8")
        counter.sql = sql
        shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
        try:
            statements = parse_sql(sql)
        except Exception as exc:
            print(f"{shown}: cannot parse: {exc}")
            failures += 1
            continue
        for stmt in statements:
            counter.stmt_location = stmt.stmt_location
            printed, failed = _visit(state, stmt)
            if failed is not None:
                counter.errors, counter.warnings, counter.unknowns, counter.hidden = failed
                args.plpgsql = False
                try:
                    printed, again = _visit(state, stmt)
                finally:
                    args.plpgsql = True
                if again is not None:
                    print(f"{shown}: pgspot fails on the statement at line {counter.line_number()}")
                    failures += 1
                    continue
                unparsed.append((f"{shown}:{counter.line_number()}", _pinned(state, stmt)))
            for line in printed.splitlines():
                print(f"{shown}: {line}")
    for where, pinned in unparsed:
        if UNPARSED in allowed and pinned:
            counter.hidden[UNPARSED] += 1
            print(f"{where}: note: pgspot cannot read this PL/pgSQL body; checked without it ({UNPARSED} allowed)")
        else:
            why = "" if pinned else " (and its search_path is not pinned to pg_catalog, ..., pg_temp)"
            print(f"{where}: {UNPARSED}: pgspot cannot read this PL/pgSQL body{why}; checked without it")
            failures += 1
    found = counter.errors + counter.warnings + counter.unknowns + failures
    hidden = ", ".join(f"{rule} {n}" for rule, n in sorted(counter.hidden.items())) or "none"
    print(
        f"pgspot {pgspot_version}: {len(paths)} files, {counter.errors} errors, {counter.warnings} warnings,"
        f" {counter.unknowns} unknown, {failures} failures; hidden by {allowlist.name}: {hidden}"
    )
    return 1 if found else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/pgspot_check.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("files", nargs="*", type=Path, help="default: migrations/*.sql, then sql/*.sql")
    parser.add_argument("--allowlist", type=Path, default=ALLOWLIST)
    args = parser.parse_args(argv)
    files = [p.resolve() for p in args.files] or [
        *sorted((REPO / "migrations").glob("*.sql")),
        *sorted((REPO / "sql").glob("*.sql")),
    ]
    return check(files, read_allowlist(args.allowlist), args.allowlist)


if __name__ == "__main__":
    sys.exit(main())
