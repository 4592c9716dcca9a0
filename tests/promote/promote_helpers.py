"""Helpers for promotion tests: real git (a bare repository as the remote, clones with
their own identity), one archive shared by every clone, releases and gate evidence
written straight into the ledger, and a fake GitHub API served over real HTTP."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from llmops.archive import DirArchive
from llmops.domain.archive import LedgerEntry
from llmops.domain.evals import GateReason, GateResult
from llmops.ops.promote import GateRun, World
from llmops.promote.pins import set_pin

ROOT = Path(__file__).resolve().parents[2]
GITHUB_URL = "https://github.com/acme/llm-apps.git"


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout.strip()


def identity(path: Path, name: str = "Test Promoter") -> None:
    git(path, "config", "user.name", name)
    git(path, "config", "user.email", f"{name.split()[0].lower()}@example.com")
    git(path, "config", "commit.gpgsign", "false")


@dataclass
class Remote:
    """A bare remote, the seed clone that created it, and the shared archive."""

    tmp: Path
    bare: Path
    seed: Path
    archive: DirArchive

    def clone(self, name: str, *, github_url: bool = False) -> Path:
        path = self.tmp / name
        git(self.tmp, "clone", "--quiet", str(self.bare), str(path))
        identity(path, f"{name.capitalize()} Promoter")
        if github_url:
            # the remote *reads* as GitHub (owner/repo parsed from it), git talks to the bare repo
            git(path, "config", "remote.origin.url", GITHUB_URL)
            git(path, "config", f"url.{self.bare}.insteadOf", GITHUB_URL)
        return path

    def show(self, file: str, ref: str = "main") -> str:
        return git(self.bare, "show", f"{ref}:{file}")

    def refs(self) -> str:
        return git(self.bare, "for-each-ref", "--format=%(refname) %(objectname)")

    def log(self, ref: str = "main") -> list[str]:
        return git(self.bare, "log", "--format=%s", ref).splitlines()

    def message(self, ref: str = "main") -> str:
        return git(self.bare, "log", "-1", "--format=%B", ref)

    def trailers(self, ref: str = "main") -> list[tuple[str, str]]:
        text = git(self.bare, "log", "-1", "--format=%(trailers:only,unfold)", ref)
        return [tuple(line.split(": ", 1)) for line in text.splitlines() if line]  # type: ignore[misc]


def make_remote(tmp_path: Path) -> Remote:
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "--quiet", "--bare", "-b", "main", str(bare))
    seed = tmp_path / "seed"
    git(tmp_path, "init", "--quiet", "-b", "main", str(seed))
    identity(seed, "Seed Maintainer")
    for part in ("manifests", "environments", "pipelines"):
        shutil.copytree(ROOT / part, seed / part)
    (seed / ".gitignore").write_text(".llmops/\n")
    git(seed, "add", "-A")
    git(seed, "commit", "--quiet", "-m", "the example repository")
    git(seed, "remote", "add", "origin", str(bare))
    git(seed, "push", "--quiet", "-u", "origin", "main")
    return Remote(tmp_path, bare, seed, DirArchive(tmp_path / "archive"))


def fake_release(archive: DirArchive, app: str, label: str) -> str:
    """A release whose bundle is archived (a stand-in: promotion never opens it)."""
    digest = archive.put(f"bundle of {app} {label}".encode())
    release = f"{app}@sha256:{digest}"
    archive.append("released", app, release=release, evidence={"bundle": digest}, data={})
    return release


def give_evidence(
    archive: DirArchive,
    release: str,
    env: str,
    *,
    passed: bool = True,
    suites: list[str] | None = None,
) -> LedgerEntry:
    """An ``evaluated`` entry for ``release`` in ``env``, citing a tiny archived JSON report."""
    app = release.split("@", 1)[0]
    report = json.dumps({"kind": "EvalReport", "release": release, "env": env, "passed": passed})
    digest = archive.put(report.encode())
    gate: dict[str, Any] = {
        "stage": env,
        "passed": passed,
        "passRate": 1.0 if passed else 0.5,
        "passRateLowerBound": 1.0 if passed else 0.5,
        "minPassRate": 0.95,
    }
    if suites is not None:
        gate["suites"] = suites
    return archive.append(
        "evaluated", app, release=release, env=env, evidence={"report": digest}, data={"gate": gate}
    )


def commit_pins(clone: Path, env: str, pins: dict[str, str], message: str = "pin by hand") -> str:
    path = clone / "environments" / f"{env}.yaml"
    text = path.read_text()
    for app, release in pins.items():
        text = set_pin(text, app, release)
    path.write_text(text)
    git(clone, "add", str(path))
    git(clone, "commit", "--quiet", "-m", message)
    git(clone, "push", "--quiet", "origin", "HEAD:main")
    return git(clone, "rev-parse", "HEAD")


def no_evals(*args: Any) -> GateRun:
    raise AssertionError("the eval engine must not run in this test")


def make_world(archive: DirArchive, **overrides: Any) -> World:
    options: dict[str, Any] = {
        "archive": archive,
        "environ": {},
        "gate_runner": no_evals,
        "sleep": lambda seconds: None,
    }
    options.update(overrides)
    return World(**options)


def later(hours: float) -> Any:
    return lambda: datetime.now(UTC) + timedelta(hours=hours)


def gate_run(stage: str, passed: bool) -> GateRun:
    code = "Passed" if passed else "PassRateBelowMinimum"
    result = GateResult(
        stage=stage,
        passed=passed,
        reasons=(GateReason(code, f"{stage} gate {'passed' if passed else 'failed'}", not passed),),
        pass_rate=1.0 if passed else 0.4,
        pass_rate_lower_bound=1.0 if passed else 0.4,
        min_pass_rate=0.95,
    )
    report = json.dumps({"kind": "EvalReport", "stage": stage, "passed": passed}).encode()
    return GateRun(result, report)
