"""``llmops up`` as a newcomer runs it: outside a git repository it says so and creates
nothing; on a git copy of the example it starts the stub model (and says plainly that it
is not a real LLM), deploys dev, promotes to test, stops before an approval-required prod
and says how to approve; ``--approve`` takes it to prod; a rerun does nothing; ``--down``
stops every process it started."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reconcile"))
from recon_helpers import SUPPORT_REPLY, events, git, make_repo, pin, processes, stop_targets

from llmops.adapters import process


def llmops(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    return subprocess.run(
        [sys.executable, "-m", "llmops", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
    )


def test_outside_git_it_says_so_and_creates_nothing(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("not a repository\n")
    result = llmops("up", str(plain))
    assert result.returncode == 2
    assert "is not a git repository" in result.stderr and "Nothing was initialised" in result.stderr
    assert "git init" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in plain.iterdir()) == ["notes.txt"]


def test_up_runs_the_pipeline_and_down_stops_it(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    rules = tmp_path / "rules.yaml"
    rules.write_text(json.dumps({"rules": [{"match": "Customer message", "reply": SUPPORT_REPLY}]}))
    stub_pid = None
    try:
        first = llmops("up", str(repo), "--stub-rules", str(rules))
        assert first.returncode == 0, first.stdout + first.stderr
        out = first.stdout
        assert (
            "no model endpoint configured: using the built-in stub model (not a real LLM) at http://127.0.0.1:"
            in out
        )
        assert "gate dev passed" in out and "promoted support-bot@sha256:" in out
        assert "ApprovalRequired" in out and "llmops up --approve" in out
        assert f"llmops up {repo} --down" in out
        state = json.loads((repo / ".llmops" / "up" / "stub.json").read_text())
        stub_pid = state["pid"]
        assert process.pid_alive(stub_pid)
        assert pin(repo, "test", "support-bot") and pin(repo, "prod", "support-bot") is None
        assert set(processes(repo)) == {
            f"{e}/{a}" for e in ("dev", "test") for a in ("support-bot", "summarizer")
        }

        second = llmops("up", str(repo), "--stub-rules", str(rules), "--approve", "-o", "json")
        assert second.returncode == 0, second.stderr
        answer = json.loads(second.stdout)
        assert answer["stub"]["started"] is False and answer["stub"]["pid"] == stub_pid
        prod = next(s for s in answer["pass"]["stages"] if s["env"] == "prod")
        assert {a["app"]: a["phase"] for a in prod["apps"]} == {
            "support-bot": "Ready",
            "summarizer": "Ready",
        }
        assert pin(repo, "prod", "summarizer") == pin(repo, "test", "summarizer")
        assert "promote summarizer to prod" in git(repo, "log", "--format=%s")

        running, ledger = processes(repo), len(events(repo))
        third = llmops("up", str(repo), "--stub-rules", str(rules), "--approve")
        assert third.returncode == 0, third.stderr
        assert "nothing to do: everything runs what git says" in third.stdout
        for env in ("dev", "test", "prod"):
            assert any(
                line.startswith(env) and "Ready" in line and "http://127.0.0.1:" in line
                for line in third.stdout.splitlines()
            ), third.stdout
        assert processes(repo) == running and len(events(repo)) == ledger

        down = llmops("up", str(repo), "--down")
        assert down.returncode == 0, down.stderr
        assert f"stopped stub model (pid {stub_pid}" in down.stdout
        assert "stopped prod: support-bot" in down.stdout
        assert not process.pid_alive(stub_pid)
        assert processes(repo) == {}
        assert llmops("up", str(repo), "--down").stdout.strip() == "nothing was running"
    finally:
        stop_targets(repo)
        if stub_pid is not None and process.pid_alive(stub_pid):
            process.terminate(stub_pid, ("stub-model",), timeout=5.0)


def _endpoint(out: str, env: str, app: str) -> str:
    """The endpoint in the final table's row for ``env``/``app`` (progress lines come first)."""
    rows = [line.split() for line in out.splitlines() if line.split()[:3] == [env, app, "Ready"]]
    assert rows and rows[-1][-1].startswith("http://127.0.0.1:"), out
    return rows[-1][-1]


def test_skip_soak_waives_the_soak_on_this_machine_and_records_it(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "soaking", soak="1h")
    rules = tmp_path / "rules.yaml"
    rules.write_text(json.dumps({"rules": [{"match": "Customer message", "reply": SUPPORT_REPLY}]}))
    args = ("up", str(repo), "--stub-rules", str(rules), "--approve")
    try:
        waiting = llmops(*args)
        assert waiting.returncode == 0, waiting.stdout + waiting.stderr
        assert "prod support-bot: promote SoakPending:" in waiting.stdout, waiting.stdout
        assert "waive it on this machine with --skip-soak" in waiting.stdout
        assert "waived" not in waiting.stdout
        assert pin(repo, "test", "support-bot") and pin(repo, "prod", "support-bot") is None

        skipped = llmops(*args, "--skip-soak")
        assert skipped.returncode == 0, skipped.stdout + skipped.stderr
        out = skipped.stdout
        for app in ("support-bot", "summarizer"):
            said = [line.split() for line in out.splitlines() if "waived" in line]
            assert ["prod", app, "soak", "of", "1h", "waived"] in [s[:6] for s in said], out
            assert "(--skip-soak, this machine only)" in out
            assert pin(repo, "prod", app) == pin(repo, "test", app)
            promoted = [e for e in events(repo, "promoted", "prod") if e.app == app]
            assert promoted and promoted[-1].data["state"] == "committed"
            assert promoted[-1].data["soakWaivedBy"] == "llmops up --skip-soak"
            assert promoted[-1].data["approvedBy"] == "llmops up --approve"
            assert all(e.data.get("soakWaivedBy") is None for e in events(repo, "promoted", "test"))
        release = pin(repo, "prod", "support-bot")
        endpoint = _endpoint(out, "prod", "support-bot")
        request = urllib.request.Request(
            f"{endpoint}/v1/apps/support-bot/invoke",
            data=json.dumps({"inputs": {"question": "hi"}}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert json.loads(answer.read())["release"] == release

        running, ledger = processes(repo), len(events(repo))
        again = llmops(*args, "--skip-soak")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "nothing to do: everything runs what git says" in again.stdout
        assert "waived" not in again.stdout
        assert processes(repo) == running and len(events(repo)) == ledger
    finally:
        stop_targets(repo)
        llmops("up", str(repo), "--down")
