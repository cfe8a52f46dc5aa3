"""Mutation testing of robustft's core with mutmut: each core file against the tests that cover it.

    python scripts/mutation.py                      # every file in COVERED_BY (what `make mutation` runs)
    python scripts/mutation.py src/robustft/training/schedules.py src/robustft/attacks/
    python scripts/mutation.py --jobs 2 --diffs ...  # two workers; print each survivor's diff

mutmut (3.x) mutates one function at a time and runs the tests that call it. Run on the whole suite its first
step (which test calls which function) would run all ~1,600 tests; here each mutated file gets its own mutmut
workspace, ``.mutation/<file>/`` (gitignored), holding a copy of ``pyproject.toml`` with a ``[tool.mutmut]`` table
that mutates only that file and selects only its tests (COVERED_BY). Each mutant then runs, in a forked worker,
only the selected tests that reach the mutated function, with ``-x``; its time limit is CPU seconds (so a loaded
machine does not turn slow tests into timeouts): ``(the tests' clean time + TIMEOUT_CONSTANT) * 2 *
TIMEOUT_MULTIPLIER``. A workspace is rebuilt on every run unless ``--keep`` is given (mutmut would otherwise keep
old verdicts after the tests change).

Printed per file: killed / survived / timeout / no tests (mutants in code no selected test reaches) / other, and
the killed share = killed / all mutants (timeouts and "no tests" count against it). Survivors are listed by
name; ``cd .mutation/<file> && mutmut show <name>`` prints one's diff. Exit status 0 whatever the score: this is
a habit to read survivors by, not a gate (CI does not run it).
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutation"
TIMEOUT_MULTIPLIER = 5.0  # mutmut's default 15 lets an endless-loop mutant burn half a minute of CPU
TIMEOUT_CONSTANT = 1.0

# Each mutated file -> the test files (globs, from the repository root) that exercise it. Keep this next to the
# tests: a new test file for one of these files goes here too, or its kills are not counted.
_ATTACK_TESTS = ["tests/test_attacks_*.py", "tests/test_attack_*.py", "tests/test_curve_levels.py"]
COVERED_BY: dict[str, list[str]] = {
    "src/robustft/attacks/base.py": _ATTACK_TESTS,
    "src/robustft/attacks/pgd.py": _ATTACK_TESTS,
    "src/robustft/attacks/apgd.py": _ATTACK_TESTS,
    "src/robustft/attacks/losses.py": _ATTACK_TESTS,
    "src/robustft/attacks/prepare.py": [*_ATTACK_TESTS, "tests/test_models_vit_strategies.py",
                                        "tests/test_fast_paths.py", "tests/test_relu6_in_place.py"],
    "src/robustft/attacks/relu6_in_place.py": ["tests/test_relu6_in_place.py", "tests/test_fast_paths.py"],
    "src/robustft/attacks/stem_input_grad.py": ["tests/test_stem_input_grad.py", "tests/test_fast_paths.py"],
    "src/robustft/attacks/pointwise_linear.py": ["tests/test_pointwise_linear.py", "tests/test_fast_paths.py"],
    # its unit tests only: tests/test_train_fast_paths.py takes ~20 s per mutant (it trains every strategy)
    "src/robustft/training/small_map_depthwise.py": ["tests/test_small_map_depthwise.py"],
    "src/robustft/attacks/prepared_cache.py": ["tests/test_prepared_cache.py", "tests/test_fast_paths.py",
                                               "tests/test_crafting.py", "tests/test_attacks_prepare_vit.py",
                                               "tests/test_hooked_refresh.py"],
    "src/robustft/attacks/robust_evaluation.py": _ATTACK_TESTS,
    "src/robustft/attacks/curve_levels.py": ["tests/test_curve_levels.py"],
    "src/robustft/attacks/cascade.py": _ATTACK_TESTS,
    "src/robustft/attacks/checks.py": _ATTACK_TESTS,
    "src/robustft/attacks/square.py": _ATTACK_TESTS,
    "src/robustft/training/objectives.py": ["tests/test_objectives*.py", "tests/test_trainer_eps.py"],
    "src/robustft/training/schedules.py": ["tests/test_schedules*.py"],
    "src/robustft/analysis/evidence.py": ["tests/test_evidence*.py", "tests/test_findings*.py"],
    "src/robustft/analysis/findings.py": ["tests/test_findings*.py"],
    "src/robustft/analysis/findings_base.py": ["tests/test_findings*.py"],
    "src/robustft/analysis/findings_paper_a.py": ["tests/test_findings*.py"],
    "src/robustft/analysis/findings_paper_b.py": ["tests/test_findings*.py"],
    "src/robustft/analysis/findings_onset.py": ["tests/test_findings*.py"],
    "src/robustft/analysis/findings_peak.py": ["tests/test_findings*.py", "tests/test_stats.py"],
}

KILLED, SURVIVED, TIMEOUT, NO_TESTS = "killed", "survived", "timeout", "no tests"
_RESULT = re.compile(r"^\s+(\S+__mutmut_\d+): (.+)$")


def _selected(arguments: list[str]) -> list[str]:
    """The COVERED_BY keys named by ``arguments`` (a file, or a folder prefix); all of them when none."""
    if not arguments:
        return list(COVERED_BY)
    chosen: list[str] = []
    for argument in arguments:
        name = Path(argument).resolve().relative_to(ROOT).as_posix() if Path(argument).exists() else argument
        matches = [f for f in COVERED_BY if f == name or f.startswith(name.rstrip("/") + "/")]
        if not matches:
            sys.exit(f"mutation: {argument} is not a mutated file or a folder holding one; the files are the keys "
                     f"of COVERED_BY in {Path(__file__).relative_to(ROOT)} (add the file there with its tests).")
        chosen += [m for m in matches if m not in chosen]
    return chosen


def _tests_for(source: str) -> list[str]:
    found = sorted({Path(p).as_posix() for pattern in COVERED_BY[source] for p in glob.glob(pattern, root_dir=ROOT)})
    if not found:
        sys.exit(f"mutation: no test file matches {COVERED_BY[source]} for {source}; fix COVERED_BY.")
    return found


def _workspace(source: str, tests: list[str], keep: bool) -> Path:
    """``.mutation/<file>/`` with links to src and tests and a pyproject.toml whose [tool.mutmut] selects them."""
    place = WORK / source.removeprefix("src/robustft/").removesuffix(".py").replace("/", "__")
    if place.exists() and not keep:
        shutil.rmtree(place)
    place.mkdir(parents=True, exist_ok=True)
    for name in ("src", "tests", "configs"):  # some attack tests read the shipped configs
        if not (place / name).exists():
            (place / name).symlink_to(ROOT / name, target_is_directory=True)
    table = "\n".join([
        "", "[tool.mutmut]",
        'source_paths = ["src"]',
        'also_copy = ["configs"]',
        f"only_mutate = [{source!r}]".replace("'", '"'),
        "pytest_add_cli_args_test_selection = [" + ", ".join(f'"{t}"' for t in tests) + "]",
        'pytest_add_cli_args = ["-p", "no:cacheprovider"]',
        f"timeout_multiplier = {TIMEOUT_MULTIPLIER}",
        f"timeout_constant = {TIMEOUT_CONSTANT}",
        "use_git_change_detection = false",
        "",
    ])
    (place / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text(encoding="utf-8") + table,
                                          encoding="utf-8")
    return place


def _mutmut() -> str:
    beside = Path(sys.executable).parent / "mutmut"
    found = str(beside) if beside.exists() else shutil.which("mutmut")
    if not found:
        sys.exit("mutation: mutmut is not installed; `pip install -e '.[dev]'` (or `make install`) installs it.")
    return found


def _run(source: str, jobs: int, keep: bool, diffs: bool) -> Counter:
    tests = _tests_for(source)
    place = _workspace(source, tests, keep)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the workspace's copy is the code tested
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    start = time.monotonic()
    with open(place / "mutmut.log", "w", encoding="utf-8") as log:
        run = subprocess.run([_mutmut(), "run", "--max-children", str(jobs)], cwd=place, env=env, stdout=log,
                             stderr=subprocess.STDOUT, check=False)
    seconds = time.monotonic() - start
    listed = subprocess.run([_mutmut(), "results", "--all", "true"], cwd=place, env=env, capture_output=True,
                            text=True, check=False)
    statuses = {m.group(1): m.group(2).strip() for m in map(_RESULT.match, listed.stdout.splitlines()) if m}
    counts = Counter(statuses.values())
    if run.returncode != 0 or not statuses:
        print(f"{source}: mutmut failed (exit {run.returncode}); see {place.relative_to(ROOT)}/mutmut.log")
        counts["failed"] += 1
        return counts
    other = sum(counts.values()) - counts[KILLED] - counts[SURVIVED] - counts[TIMEOUT] - counts[NO_TESTS]
    total = sum(counts.values())
    print(f"{source}: {total} mutants, killed {counts[KILLED]}, survived {counts[SURVIVED]}, timeout "
          f"{counts[TIMEOUT]}, no tests {counts[NO_TESTS]}, other {other}; killed {counts[KILLED] / total:.1%} "
          f"({seconds:.0f} s; tests: {' '.join(tests)})")
    for name, status in sorted(statuses.items(), key=lambda item: _number(item[0])):
        if status != KILLED:
            print(f"    {status:9} {name}")
            if diffs:
                shown = subprocess.run([_mutmut(), "show", name], cwd=place, env=env, capture_output=True,
                                       text=True, check=False)
                print("".join(f"        {line}\n" for line in shown.stdout.splitlines()[1:]))
    return counts


def _number(name: str) -> tuple[str, int]:
    function, _, number = name.rpartition("__mutmut_")
    return function, int(number)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", help="mutated files or folders (default: every file in COVERED_BY)")
    parser.add_argument("--jobs", type=int, default=1, help="mutants tested at once (default 1)")
    parser.add_argument("--keep", action="store_true", help="reuse the workspaces' earlier verdicts")
    parser.add_argument("--diffs", action="store_true", help="print each surviving mutant's diff")
    args = parser.parse_args(argv)
    total: Counter = Counter()
    for source in _selected(args.files):
        total += _run(source, args.jobs, args.keep, args.diffs)
    mutants = sum(v for k, v in total.items() if k != "failed")
    if mutants:
        print(f"all: {mutants} mutants, killed {total[KILLED]}, survived {total[SURVIVED]}, timeout "
              f"{total[TIMEOUT]}, no tests {total[NO_TESTS]}; killed share {total[KILLED] / mutants:.1%}")
    return 1 if total["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
