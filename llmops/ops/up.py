"""``llmops up``: the whole pipeline on one machine with the embedded defaults, and ``--down``.

Called by ``llmops.cli.up``. Nothing to install or configure: the repository's own git
(promotions are local commits on the checked-out branch; nothing is pushed), the ``dir``
archive (``.llmops/archive``), the ``local`` target for every environment (supervised
``llmops serve --bundle`` processes on 127.0.0.1), and, when the apps' model endpoint
cannot be used (no API key set), the built-in stub model started as a background
process, said plainly. Then one reconcile pass (``llmops.ops.reconcile``): validate →
release → gate → deploy dev → promote to test → deploy test → promote to prod → deploy
prod, as far as the pipeline's policies allow: a soak that has not elapsed stops it, and
an approval-required stage needs ``approve`` (the proposal is merged locally), and
``skip_soak`` waives soak waits on this machine (said in the progress output and
recorded in the ``promoted`` entry as ``soakWaivedBy``). Every
process keeps running after ``up`` returns; :func:`down` stops them.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llmops.adapters import process
from llmops.archive.base import Archive
from llmops.deploy.target import Target
from llmops.domain.errors import ExternalError, ManifestInvalid, UsageError
from llmops.domain.models.environment import Target as TargetSpec
from llmops.domain.repo import Repo
from llmops.ops.reconcile import ReconcileOptions, ReconcileWorld, reconcile_pass
from llmops.reconcile.localgit import LocalGit
from llmops.reconcile.result import PassResult

#: where ``up`` keeps the stub model's state and log, under the repository root
UP_DIR = ".llmops/up"
#: the stub model's preferred port (kept across runs so deployed apps need no restart)
STUB_PORT = 18070
#: a rules file for the stub model, used when present at the repository root
#: where ``up`` looks for the stub model's scripted replies, first match wins
STUB_RULES_FILES = ("stub-rules.yaml", "demo/stub-rules.yaml")
_STUB_MARKER = "stub-model"
_IDENTITY = ("llmops up", "llmops-up@localhost")


@dataclass(frozen=True, slots=True)
class StubModel:
    """The stub model ``up`` runs: where, its process, whether this run started it."""

    url: str
    pid: int
    port: int
    started: bool
    rules: str | None
    log: str


@dataclass(frozen=True, slots=True)
class UpResult:
    """What ``up`` did: the pass, the model used, and what waits."""

    root: str
    model: str
    stub: StubModel | None
    #: one line for the end of the output
    model_short: str
    result: PassResult
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DownResult:
    """What ``up --down`` stopped."""

    stopped: tuple[str, ...]


# --------------------------------------------------------------------------- checks


def check_git(root: Path) -> LocalGit:
    """The repository's git, or a ``UsageError`` saying how to make one (nothing is created)."""
    if shutil.which("git") is None:
        raise UsageError(
            "llmops up needs git: environments, pins and promotions live in a git repository. "
            "Install git (e.g. apt-get install git, brew install git) and run again"
        )
    from llmops.adapters.gitrepo import revision

    if revision(root) is None:
        raise UsageError(
            f"{root} is not a git repository with a commit: llmops up deploys what git holds "
            "and promotes by committing pins. Nothing was initialised; make it one first: "
            f"cd {root} && git init && git add -A && git commit -m 'first commit'"
        )
    return LocalGit(root)


def validate(root: Path) -> Repo:
    """The validated repository, or ``ManifestInvalid`` with every diagnostic."""
    from llmops.manifests.repository import validate_repo

    report = validate_repo(root, "")
    if not report.ok or report.repo is None:
        raise ManifestInvalid(
            f"{len(report.errors)} problem(s) in the manifests; fix them and run again",
            report.errors,
        )
    return report.repo


def missing_keys(repo: Repo) -> dict[str, str]:
    """Apps whose configured model cannot be called from here (no API key), and why."""
    from llmops.runtime.loaded import load_app

    found: dict[str, str] = {}
    for app in sorted(repo.apps):
        model = load_app(repo, app).model
        if model.api_key_problem:
            found[app] = model.api_key_problem
    return found


def identify(git: LocalGit, notes: list[str]) -> None:
    """Give this process a git identity when git has none (promotions are commits)."""
    name, email = git.identity()
    if name and email:
        return
    for prefix in ("GIT_AUTHOR", "GIT_COMMITTER"):
        os.environ.setdefault(f"{prefix}_NAME", name or _IDENTITY[0])
        os.environ.setdefault(f"{prefix}_EMAIL", email or _IDENTITY[1])
    notes.append(
        f"git has no user.name/user.email here: promotion commits are authored as "
        f"{os.environ['GIT_AUTHOR_NAME']} <{os.environ['GIT_AUTHOR_EMAIL']}>"
    )


# --------------------------------------------------------------------------- the stub


def _stub_state(root: Path) -> Path:
    return root / UP_DIR / "stub.json"


def _healthy(port: int) -> bool:
    answer, _ = process.probe(f"http://127.0.0.1:{port}/healthz", timeout=2.0)
    return answer is not None and answer.status == 200


def ensure_stub(root: Path, rules: Path | None, python: str = sys.executable) -> StubModel:
    """The stub model ``up`` started before (if it still runs with the same rules), or a
    new one on :data:`STUB_PORT` (or the next free port), left running."""
    state_file = _stub_state(root)
    log = root / UP_DIR / "stub.log"
    rules_text = str(rules.resolve()) if rules is not None else None
    previous = process.read_json(state_file)
    if previous is not None:
        pid, port = int(previous.get("pid") or 0), int(previous.get("port") or 0)
        mine = process.owns(pid, (_STUB_MARKER, str(port)))
        if mine and previous.get("rules") == rules_text and _healthy(port):
            url = f"http://127.0.0.1:{port}/v1"
            return StubModel(url, pid, port, False, rules_text, str(log))
        if mine:
            process.terminate(pid, (_STUB_MARKER, str(port)), timeout=10.0)
    wanted = int(previous.get("port") or STUB_PORT) if previous else STUB_PORT
    port = next((p for p in range(wanted, wanted + 20) if process.port_free(p)), 0)
    if port == 0:
        raise ExternalError(f"no free port for the stub model in {wanted}..{wanted + 19}")
    argv = [python, "-m", "llmops", _STUB_MARKER, "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--log-level", "warning"]
    if rules_text is not None:
        argv += ["--rules", rules_text]
    pid = process.spawn_detached(argv, env=dict(os.environ), cwd=root, log=log)
    deadline = time.monotonic() + 20.0
    while not _healthy(port):
        if not process.pid_alive(pid) or time.monotonic() > deadline:
            process.terminate(pid, (_STUB_MARKER, str(port)), timeout=5.0)
            raise ExternalError(
                f"the stub model did not start on port {port}: {process.log_tail(log, 10)}"
            )
        time.sleep(0.05)
    process.write_json_atomic(state_file, {"pid": pid, "port": port, "rules": rules_text})
    return StubModel(f"http://127.0.0.1:{port}/v1", pid, port, True, rules_text, str(log))


# --------------------------------------------------------------------------- up and down


def _local_targets(repo: Repo) -> Callable[[str, TargetSpec, Archive, Path], Target]:
    """Every environment as local processes: a local target as configured; any other on
    its own port range (18080 + 100 per stage)."""
    from llmops.deploy.local import LocalTarget

    order = {
        stage.env: k
        for source in repo.pipelines.values()
        for k, stage in enumerate(source.pipeline.spec.stages)
    }

    def factory(env: str, spec: TargetSpec, archive: Archive, state_root: Path) -> Target:
        port = spec.base_port if spec.kind == "local" else 18080 + 100 * order.get(env, 0)
        return LocalTarget(state_root, env, port, archive)

    return factory


def up(
    root: Path,
    *,
    approve: bool = False,
    skip_soak: bool = False,
    model_url: str | None = None,
    stub_rules: Path | None = None,
    timeout: float = 120.0,
    progress: Callable[[str], None] = lambda line: None,
) -> UpResult:
    """Run the pipeline on this machine as far as its policies allow; leave it running."""
    root = Path(root).resolve()
    git = check_git(root)
    notes: list[str] = []
    identify(git, notes)
    progress(f"validating {root}")
    repo = validate(root)
    progress(f"valid: {len(repo.apps)} app(s), {len(repo.environments)} environment(s)")
    stub: StubModel | None = None
    if model_url is not None:
        model = f"model endpoint: {model_url} (--model-url)"
        short = model
    else:
        missing = missing_keys(repo)
        if missing:
            rules = stub_rules
            if rules is None:
                found = [root / f for f in STUB_RULES_FILES if (root / f).is_file()]
                rules = found[0] if found else None
            stub = ensure_stub(root, rules)
            model_url = stub.url
            why = "; ".join(f"{app}: {text}" for app, text in missing.items())
            model = (
                "no model endpoint configured: using the built-in stub model (not a real LLM) "
                f"at {stub.url}"
                + (f" with rules from {rules}" if rules else ", which echoes")
                + f" ({why})"
            )
            short = f"model: the built-in stub model (not a real LLM) at {stub.url}"
        else:
            model = "model endpoint: each app's own (its API key is set)"
            short = model
    progress(model)
    for source in repo.environments.values():
        spec = source.environment.spec.target
        if spec.kind != "local":
            notes.append(
                f"{source.environment.metadata.name} targets {spec.kind}; llmops up runs it as "
                "local processes"
            )
    from llmops.ops.release import archive_for

    store = archive_for(repo)
    if getattr(store, "root", None) is None:
        from llmops.archive import DirArchive

        store = DirArchive(root / ".llmops" / "archive")
        notes.append("the pipeline archives to git; llmops up uses .llmops/archive instead")
    options = ReconcileOptions(
        model_url=model_url,
        approve=approve,
        skip_soak=skip_soak,
        local_only=True,
        timeout=timeout,
    )
    world = ReconcileWorld(
        archive=store,
        target_factory=_local_targets(repo),
        progress=progress,
        memo_path=root / UP_DIR / "memo.json",
    )
    result = reconcile_pass(root, options, world)
    return UpResult(str(root), model, stub, short, result, tuple(notes))


def down(root: Path) -> DownResult:
    """Stop every process ``up`` (or a local target) left running for this repository."""
    from llmops.archive import DirArchive
    from llmops.deploy.local import LocalTarget, state_root_for

    root = Path(root).resolve()
    stopped: list[str] = []
    state_root = state_root_for(root)
    archive = DirArchive(root / ".llmops" / "archive")
    if state_root.is_dir():
        for env_dir in sorted(p for p in state_root.iterdir() if p.is_dir()):
            for done in LocalTarget(state_root, env_dir.name, 18080, archive).stop_all():
                stopped.append(f"{env_dir.name}: {done.app}")
    state_file = _stub_state(root)
    previous = process.read_json(state_file)
    if previous is not None:
        pid, port = int(previous.get("pid") or 0), int(previous.get("port") or 0)
        if process.terminate(pid, (_STUB_MARKER, str(port)), timeout=10.0):
            stopped.append(f"stub model (pid {pid}, port {port})")
        state_file.unlink(missing_ok=True)
    (root / UP_DIR / "memo.json").unlink(missing_ok=True)
    return DownResult(tuple(stopped))


def describe(result: UpResult) -> dict[str, object]:
    """``up``'s result as JSON."""
    stub = result.stub
    return {
        "root": result.root,
        "model": result.model,
        "stub": None
        if stub is None
        else {"url": stub.url, "pid": stub.pid, "started": stub.started, "rules": stub.rules},
        "notes": list(result.notes),
        "pass": result.result.to_json(),
    }


__all__ = [
    "DownResult",
    "StubModel",
    "UpResult",
    "check_git",
    "describe",
    "down",
    "ensure_stub",
    "up",
]
