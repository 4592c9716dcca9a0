"""CLI start-up and validation speed (issue: foundation).

Measures, as medians of repeated cold subprocess runs on this machine:
  - `llmops --help` (target ≤ 0.25 s), beside bare `python -c pass` for scale;
  - `llmops validate` on the example repo (target ≤ 0.5 s);
  - `llmops validate` on a generated repo of 500 apps (target ≤ 2 s).
"""

from __future__ import annotations

import argparse
import json
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

    base, base_min = median_seconds([args.python, "-c", "pass"], args.runs)
    rows["python -c pass (baseline)"] = {"median_s": base, "min_s": base_min}
    help_med, help_min = median_seconds([*llmops, "--help"], args.runs)
    rows["llmops --help"] = {"median_s": help_med, "min_s": help_min, "target_s": 0.25}
    val_med, val_min = median_seconds([*llmops, "validate", "-q", str(ROOT)], args.runs)
    rows["llmops validate (example)"] = {"median_s": val_med, "min_s": val_min, "target_s": 0.5}
    with tempfile.TemporaryDirectory() as tmp:
        repo = generate(Path(tmp) / "repo", args.apps)
        big_med, big_min = median_seconds(
            [*llmops, "validate", "-q", str(repo)], max(5, args.runs // 4)
        )
    rows[f"llmops validate ({args.apps} apps)"] = {
        "median_s": big_med,
        "min_s": big_min,
        "target_s": 2.0,
    }

    print(f"{'measure':34} {'median':>9} {'min':>9} {'target':>8} {'x python':>9}")
    for name, row in rows.items():
        target = f"{row['target_s']:.2f}s" if "target_s" in row else "-"
        print(
            f"{name:34} {row['median_s']:8.3f}s {row['min_s']:8.3f}s {target:>8} "
            f"{row['median_s'] / base:8.1f}x"
        )
    out = HERE / "results" / ("cli.json" if args.python == sys.executable else "cli-installed.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps({"runs": args.runs, "python": args.python, "results": rows}, indent=2) + "\n"
    )
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
