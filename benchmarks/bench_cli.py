"""CLI start-up and validation speed (issue: foundation).

Measures, as medians of repeated cold subprocess runs on this machine:
  - `llmops --help` (target ≤ 0.25 s), beside bare `python -c pass` for scale;
  - `llmops validate` on the example repo (target ≤ 0.5 s);
  - `llmops validate` on a generated repo of 500 apps (target ≤ 2 s).

Every run is a new process; nothing is cached between runs except what an install
leaves: the package's bytecode, compiled first (as pip does; with
PYTHONDONTWRITEBYTECODE set, an edited tree would otherwise be compiled on every run).
With --python, runs start in an empty directory so that the interpreter's installed
llmops is measured, not this source tree. The machine's load average is recorded: on a
shared machine the medians move with it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from genrepo import generate  # noqa: E402


def median_seconds(argv: list[str], runs: int, cwd: Path = ROOT) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=cwd, capture_output=True)
        samples.append(time.perf_counter() - start)
        if proc.returncode not in (0, 1):
            raise SystemExit(f"{argv} failed: {proc.stderr.decode()[-500:]}")
    return statistics.median(samples), min(samples)


def compile_bytecode(python: str, cwd: Path) -> None:
    """Compile the measured llmops's bytecode, as an install does."""
    where = subprocess.run(
        [python, "-c", "import llmops, os; print(os.path.dirname(llmops.__file__))"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    subprocess.run([python, "-m", "compileall", "-q", where], cwd=cwd, capture_output=True, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--apps", type=int, default=500)
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter whose llmops to measure (e.g. a venv with a regular, non-editable install)",
    )
    args = parser.parse_args()
    llmops = [args.python, "-m", "llmops"]
    rows: dict[str, dict[str, float]] = {}
    load_before = os.getloadavg()

    with tempfile.TemporaryDirectory() as tmp:
        cwd = ROOT if args.python == sys.executable else Path(tmp)
        compile_bytecode(args.python, cwd)
        base, base_min = median_seconds([args.python, "-c", "pass"], args.runs, cwd)
        rows["python -c pass (baseline)"] = {"median_s": base, "min_s": base_min}
        help_med, help_min = median_seconds([*llmops, "--help"], args.runs, cwd)
        rows["llmops --help"] = {"median_s": help_med, "min_s": help_min, "target_s": 0.25}
        val_med, val_min = median_seconds([*llmops, "validate", "-q", str(ROOT)], args.runs, cwd)
        rows["llmops validate (example)"] = {
            "median_s": val_med,
            "min_s": val_min,
            "target_s": 0.5,
        }
        repo = generate(Path(tmp) / "repo", args.apps)
        big_med, big_min = median_seconds(
            [*llmops, "validate", "-q", str(repo)], max(5, args.runs // 4), cwd
        )
    rows[f"llmops validate ({args.apps} apps)"] = {
        "median_s": big_med,
        "min_s": big_min,
        "target_s": 2.0,
    }
    load = [round(x, 2) for x in (*load_before, *os.getloadavg())]

    print(f"{'measure':34} {'median':>9} {'min':>9} {'target':>8} {'x python':>9}")
    for name, row in rows.items():
        target = f"{row['target_s']:.2f}s" if "target_s" in row else "-"
        print(
            f"{name:34} {row['median_s']:8.3f}s {row['min_s']:8.3f}s {target:>8} "
            f"{row['median_s'] / base:8.1f}x"
        )
    print(f"load average (1, 5, 15 min) before: {load[:3]}, after: {load[3:]}")
    out = HERE / "results" / ("cli.json" if args.python == sys.executable else "cli-installed.json")
    out.parent.mkdir(exist_ok=True)
    report = {"runs": args.runs, "python": args.python, "load_average": load, "results": rows}
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
