"""Mutation testing of the core modules with cosmic-ray: do the tests notice when the code is subtly wrong?

``make mutation`` (or ``python scripts/mutation.py [--modules NAME,...] [--count-only]``) takes each target
below in turn: cosmic-ray changes one thing in its code (an operator, a comparison, a constant, a branch), runs
the fastest test subset that covers it, and records whether a test failed (killed) or not (survived). The
score is killed / (killed + survived); the survivors are written out as diffs to read. A survivor is either a
missing test or an equivalent mutant (a change no behaviour can reveal).

Cosmic-ray edits the file on disk while its tests run, so everything happens in a scratch copy of the working
tree (tracked and untracked, not ignored files): an interrupted run never leaves your checkout mutated. It
takes long (one test run per mutant, about a thousand in all; the render launcher and the training job have
the slowest tests), so it is not part of ``make test``; ``make mutation`` runs it niced.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Target:
    name: str
    path: str
    """The module mutated, relative to the repository root."""
    tests: tuple[str, ...]
    """pytest arguments: the fastest subset that exercises this module's behaviour."""
    timeout_s: float
    """A test run longer than this counts as killed (a mutant that loops forever)."""
    functions: tuple[str, ...] = ()
    """Mutate only inside these functions or methods (empty: the whole module)."""


TARGETS = (
    Target(
        "render-launcher",
        "lambda/render_launcher/render_launcher_logic.py",
        ("tests/unit/lambdas/test_render_launcher.py",),
        timeout_s=90,
    ),
    Target(
        "shard-writer-finalize",
        "isaac_jobs/dataset.py",
        (
            "tests/unit/render/test_shard_writer.py",
            "tests/unit/render/test_shard_edges.py",
            "tests/unit/render/test_finalize.py",
        ),
        timeout_s=60,
    ),
    Target(
        "gl-boxes",
        "isaac_jobs/backends/gl.py",
        ("tests/unit/render/test_gl_boxes.py",),
        timeout_s=60,
        functions=("_screen_rect", "_label", "_rect_fraction", "_occluders_in_front", "_is_hidden_in_part"),
    ),
    Target(
        "training-resume-export",
        "sim2cloud/training/job.py",
        (
            "tests/unit/yolo/test_training_exit_codes.py",
            "tests/unit/yolo/test_training_bad_input.py",
            "tests/integration/test_train_serve_evaluate.py",
            "-k",
            "exits or unknown_hyperparameter_in_the_sagemaker or resumes or rerun_after or model_dir_and_sagemaker"
            " or metric_lines",
        ),
        timeout_s=300,
        functions=("train", "run_job"),
    ),
    Target(
        "serving-requests",
        "sim2cloud/serving/requests.py",
        ("tests/unit/yolo/test_serving_requests.py", "tests/unit/yolo/test_serving_request_limits.py"),
        timeout_s=60,
    ),
    Target(
        "evaluation-metrics",
        "sim2cloud/evaluation/metrics.py",
        ("tests/unit/yolo/test_metrics.py",),
        timeout_s=60,
    ),
)

EXCLUDED_OPERATORS = (
    # Operator swaps are cut to the set that finds the same gaps (Offutt's sufficient operators): + <-> -,
    # * <-> /, / <-> //, % -> *; == <-> !=; each of < <= > >= to its boundary twin and to its negation. The
    # rest (+ to **, < to ==, ...) crash at once or are killed whenever these are, and each costs a test run.
    r"core/ReplaceBinaryOperator_(?!(Add_Sub|Sub_Add|Mul_Div|Div_Mul|Div_FloorDiv|FloorDiv_Div|Mod_Mul)$)",
    r"core/ReplaceComparisonOperator_(?!(Eq_NotEq|NotEq_Eq|Lt_LtE|Lt_GtE|LtE_Lt|LtE_Gt|Gt_GtE|Gt_LtE|GtE_Gt|GtE_Lt)$)",
    # Random variable swaps and insertions: not reproducible from one run to the next.
    r"core/VariableReplacer",
    r"core/VariableInserter",
    # Dropping @dataclass / @staticmethod / @property breaks the import or every call: never a subtle change.
    r"core/RemoveDecorator",
    r"core/ReplaceUnaryOperator_.*(Invert|UAdd)",
)


def function_lines(source: str, names: tuple[str, ...]) -> list[str]:
    """``start-end`` line ranges of every function or method called one of ``names``."""
    ranges = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in names:
            ranges.append(f"{node.lineno}-{node.end_lineno}")
    missing = set(names) - {
        n.name for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    if missing:
        raise SystemExit(f"mutation: functions not found: {', '.join(sorted(missing))}")
    return ranges


def toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def test_command(target: Target) -> str:
    """One shell-quoted command line: cosmic-ray splits it with shlex (a ``-k`` expression stays one argument)."""
    return shlex.join([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *target.tests])


def write_config(target: Target, scratch: Path, config: Path) -> None:
    command = test_command(target)
    lines = [
        "[cosmic-ray]",
        f"module-path = {toml_string(target.path)}",
        f"timeout = {target.timeout_s}",
        "excluded-modules = []",
        f"test-command = {toml_string(command)}",
        "",
        "[cosmic-ray.distributor]",
        'name = "local"',
        "",
        "[cosmic-ray.filters.operators-filter]",
        f"exclude-operators = [{', '.join(toml_string(e) for e in EXCLUDED_OPERATORS)}]",
    ]
    if target.functions:
        source = (scratch / target.path).read_text(encoding="utf-8")
        ranges = function_lines(source, target.functions)
        lines += ["", "[cosmic-ray.filters.line-filter.lines]", f"{toml_string(target.path)} = {json.dumps(ranges)}"]
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")


def scratch_copy(destination: Path) -> None:
    """The working tree as it is (tracked and untracked files, not ignored ones) under ``destination``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if not source.is_file() or source.is_symlink():
            continue
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def forget_survivors(session: Path) -> None:
    """Mark a session's survivors untested again, so the next exec tries them against the tests as they are now."""
    with sqlite3.connect(session) as db:
        db.execute("DELETE FROM work_results WHERE test_outcome = 'SURVIVED'")


def run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=env, check=False, capture_output=True, text=True)


@dataclass
class Score:
    target: Target
    total: int = 0
    killed: int = 0
    survived: int = 0
    skipped: int = 0
    incompetent: int = 0
    seconds: float = 0.0

    @property
    def percent(self) -> float:
        tested = self.killed + self.survived
        return 100.0 * self.killed / tested if tested else float("nan")

    def line(self) -> str:
        return (
            f"{self.target.name:<24} {self.percent:5.1f}%  killed {self.killed:>4} / {self.killed + self.survived:<4}"
            f" survived {self.survived:>3}  (skipped by filters {self.skipped}, incompetent {self.incompetent};"
            f" {self.seconds / 60:.1f} min)  {self.target.path}"
        )


def score_session(target: Target, session: Path, cwd: Path, env: dict[str, str], survivors: Path) -> Score:
    dumped = run([str(BIN / "cosmic-ray"), "dump", str(session)], cwd, env)
    if dumped.returncode != 0:
        raise SystemExit(f"cosmic-ray dump failed:\n{dumped.stderr}")
    score = Score(target)
    notes = []
    for line in dumped.stdout.splitlines():
        item, result = json.loads(line)
        score.total += 1
        if result is None:
            continue
        if result["worker_outcome"] == "skipped":
            score.skipped += 1
        elif result["test_outcome"] == "killed":
            score.killed += 1
        elif result["test_outcome"] == "survived":
            score.survived += 1
            for mutation in item["mutations"]:
                notes.append(f"# {mutation['operator_name']} at line {mutation['start_pos'][0]}\n{result['diff']}\n")
        else:
            score.incompetent += 1
    survivors.write_text("".join(notes) or "(none)\n", encoding="utf-8")
    return score


def mutate(target: Target, out: Path, count_only: bool, resume: bool = False, retest: bool = False) -> Score:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sim2cloud-mutation-") as folder:
        scratch = Path(folder)
        scratch_copy(scratch)
        env = dict(os.environ, PYTHONPATH=str(scratch), OPENBLAS_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
        config, session = out / f"{target.name}.toml", out / f"{target.name}.sqlite"
        resuming = (resume or retest) and session.is_file()  # cosmic-ray exec runs only the mutants not yet tested
        if resuming and retest:
            forget_survivors(session)
        if not resuming:
            session.unlink(missing_ok=True)
        write_config(target, scratch, config)
        cosmic = str(BIN / "cosmic-ray")
        for step in (
            ()
            if resuming
            else (
                [cosmic, "init", str(config), str(session)],
                [str(BIN / "cr-filter-operators"), str(session), str(config)],
                *([[str(BIN / "cr-filter-lines"), "--config", str(config), str(session)]] if target.functions else []),
            )
        ):
            done = run(step, scratch, env)
            if done.returncode != 0:
                raise SystemExit(f"{' '.join(step)} failed:\n{done.stdout}\n{done.stderr}")
        if not count_only:
            # Exactly what cosmic-ray will run; "no tests ran" (exit 5) would count every mutant as killed.
            baseline = run(shlex.split(test_command(target)), scratch, env)
            if baseline.returncode != 0 or " passed" not in baseline.stdout:
                raise SystemExit(f"{target.name}: the tests fail without any mutation:\n{baseline.stdout[-3000:]}")
            print(f"{target.name}: baseline green; mutating {target.path}", flush=True)
            executed = subprocess.run([cosmic, "exec", str(config), str(session)], cwd=scratch, env=env, check=False)
            if executed.returncode != 0:
                raise SystemExit(f"{target.name}: cosmic-ray exec failed ({executed.returncode})")
        score = score_session(target, session, scratch, env, out / f"{target.name}-survivors.txt")
    score.seconds = time.monotonic() - started
    return score


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    names = [t.name for t in TARGETS]
    parser.add_argument("--modules", default=",".join(names), help=f"comma-separated subset of: {', '.join(names)}")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "mutation", help="sessions, survivors, summary")
    parser.add_argument("--count-only", action="store_true", help="list how many mutants each target has; run none")
    parser.add_argument(
        "--resume", action="store_true", help="finish the sessions an interrupted run left in --out (same sources)"
    )
    parser.add_argument(
        "--retest-survivors",
        action="store_true",
        help="run the survivors of the sessions in --out again (after adding tests; the module itself unchanged)",
    )
    args = parser.parse_args(argv)
    wanted = [name.strip() for name in args.modules.split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        parser.error(f"unknown module(s) {', '.join(unknown)}; choose from {', '.join(names)}")
    args.out.mkdir(parents=True, exist_ok=True)
    scores = []
    by_name = {t.name: t for t in TARGETS}
    for target in (by_name[name] for name in wanted):
        score = mutate(target, args.out.resolve(), args.count_only, args.resume, args.retest_survivors)
        scores.append(score)
        if args.count_only:
            mutants = score.total - score.skipped
            print(f"{target.name:<24} {mutants:>4} mutants ({score.skipped} filtered)  {target.path}")
        else:
            print(score.line(), flush=True)
    if not args.count_only:
        summary = "\n".join(score.line() for score in scores) + "\n"
        (args.out / "summary.txt").write_text(summary, encoding="utf-8")
        print(f"\nmutation scores (survivors: {args.out}/<module>-survivors.txt)\n{summary}", end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
