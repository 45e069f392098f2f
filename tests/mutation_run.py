"""Mutation testing of klbook's core modules with cosmic-ray (``make mutation``).

For each module listed in ``[tool.klbook-mutation.modules]`` of pyproject.toml (module -> the test files that
must kill its mutants), this script copies the repository's ``src``, ``tests``, ``conftest.py`` and
``pyproject.toml`` into a temporary directory -- cosmic-ray mutates the module's file in place, which must
never happen in a shared work tree --, writes a cosmic-ray configuration there, runs ``cosmic-ray init`` and
``cosmic-ray exec``, and prints every surviving mutant with its diff. Survivors judged equivalent are
listed with their reasons in tests/MUTATION.md; any other survivor is a missing test.

    .venv/bin/python tests/mutation_run.py [--sample N] [--seed S] [module ...]

``--sample N`` keeps N mutants per module, drawn with a seeded generator (a full run of discrete.py is
669 mutants, each running its test files once). Exit status 1 if a mutant survived.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _settings() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["tool"]["klbook-mutation"]


def _test_command(tests: list[str]) -> str:
    return f"env PYTHONPATH=src {sys.executable} -m pytest -x -q -p no:cacheprovider " + " ".join(tests)


def _config(module: str, tests: list[str], timeout: float) -> str:
    command = _test_command(tests)
    return (
        "[cosmic-ray]\n"
        f"module-path = {json.dumps(module)}\n"
        f"timeout = {timeout}\n"
        "excluded-modules = []\n"
        f"test-command = {json.dumps(command)}\n\n"
        "[cosmic-ray.distributor]\n"
        'name = "local"\n'
    )


def _sample(session: Path, keep: int, seed: int) -> None:
    with sqlite3.connect(session) as db:
        # cosmic-ray's job ids are random on every init: draw from the mutants in a fixed order (what and
        # where each one mutates), so that a seed names the same sample on every run.
        specs = db.execute(
            "SELECT job_id FROM mutation_specs ORDER BY "
            "operator_name, occurrence, start_pos_row, start_pos_col, end_pos_row, end_pos_col"
        )
        jobs = [row[0] for row in specs]
        drop = sorted(set(jobs) - set(random.Random(seed).sample(jobs, min(keep, len(jobs)))))
        db.executemany("DELETE FROM mutation_specs WHERE job_id = ?", [(j,) for j in drop])
        db.executemany("DELETE FROM work_items WHERE job_id = ?", [(j,) for j in drop])


def _survivors(session: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(session) as db:
        return list(
            db.execute(
                "SELECT s.operator_name, s.start_pos_row, r.diff FROM work_results r "
                "JOIN mutation_specs s ON s.job_id = r.job_id WHERE r.test_outcome = 'SURVIVED' "
                "ORDER BY s.start_pos_row"
            )
        )


def _counts(session: Path) -> dict[str, int]:
    with sqlite3.connect(session) as db:
        return dict(db.execute("SELECT test_outcome, COUNT(*) FROM work_results GROUP BY test_outcome"))


def run(module: str, tests: list[str], sample: int | None, seed: int, timeout: float) -> int:
    cosmic_ray = str(Path(sys.executable).with_name("cosmic-ray"))
    with tempfile.TemporaryDirectory(prefix="klbook-mutation-") as tmp:
        work = Path(tmp)
        for name in ("src", "tests"):
            shutil.copytree(ROOT / name, work / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        # _toc.yml and _config.yml: tests/test_browser.py (imported by tests/conftest.py) reads the table of
        # contents when it is imported.
        for name in ("conftest.py", "pyproject.toml", "_toc.yml", "_config.yml"):
            shutil.copy(ROOT / name, work / name)
        (work / "cr.toml").write_text(_config(module, tests, timeout))
        # The unmutated module must pass its tests here, or every mutant would count as killed (an import
        # error in the copy fails the test command as surely as a mutant does).
        baseline = subprocess.run(_test_command(tests), cwd=work, shell=True, capture_output=True, text=True)
        if baseline.returncode != 0:
            raise SystemExit(f"{module}: the unmutated tests fail in the copy of the tree:\n{baseline.stdout[-3000:]}")
        session = work / "session.sqlite"
        subprocess.run([cosmic_ray, "init", "cr.toml", str(session)], cwd=work, check=True)
        if sample is not None:
            _sample(session, sample, seed)
        subprocess.run([cosmic_ray, "exec", "cr.toml", str(session)], cwd=work, check=True)
        survivors = _survivors(session)
        print(f"## {module}: {_counts(session)}")
        for operator, row, diff in survivors:
            print(f"--- survived: {operator} at line {row}\n{diff}")
        return len(survivors)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*")
    parser.add_argument("--sample", type=int)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    settings = _settings()
    modules = settings["modules"]
    chosen = args.modules or list(modules)
    survived = sum(
        run(m, modules[m].split(), args.sample, args.seed, float(settings.get("timeout", 300))) for m in chosen
    )
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
