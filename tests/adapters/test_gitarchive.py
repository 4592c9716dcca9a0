"""The git archive: the dir store's layout on an orphan branch, pushed to a remote; real git,
local bare repositories as remotes, no network."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from llmops import api
from llmops.adapters.gitarchive import GitArchive
from llmops.adapters.gitplumbing import GitBranchDiverged, scrub
from llmops.archive import DirArchive
from llmops.archive.base import ArchiveCorrupt, ObjectMissing
from llmops.domain.errors import ExternalError, UsageError

ROOT = Path(__file__).resolve().parents[2]
BRANCH = "llmops/archive"
LOGGER = "llmops.adapters.gitarchive"
UNREACHABLE = "http://deploy:s3cr3t-t0ken@127.0.0.1:9/archive.git"


def git(cwd: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode:
        raise AssertionError(f"git {' '.join(args)}: {proc.stderr}")
    return proc.stdout.strip()


def ok(cwd: Path, *args: str) -> bool:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True).returncode == 0


@pytest.fixture(autouse=True, scope="module")
def _isolated_git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No system or global git config leaks in; each repo configures its own identity."""
    empty = tmp_path_factory.mktemp("home") / "gitconfig"
    empty.write_text("")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GIT_CONFIG_NOSYSTEM", "1")
        patch.setenv("GIT_CONFIG_GLOBAL", str(empty))
        yield


def identify(repo: Path, name: str = "Test") -> Path:
    git(repo, "config", "user.name", name)
    git(repo, "config", "user.email", f"{name.lower()}@example.com")
    return repo


def init_work(path: Path, remote: Path | None, *, who: bool = True) -> Path:
    """A user's repository with one commit on main (pushed when there is a remote)."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    if who:
        identify(path)
    if not (path / "README.md").exists():
        (path / "README.md").write_text("app\n")
    git(path, "add", "-A")
    git(
        path, "-c", "user.name=Setup", "-c", "user.email=setup@example.com", "commit", "-qm", "init"
    )
    if remote is not None:
        git(path, "remote", "add", "origin", str(remote))
        git(path, "push", "-q", "origin", "main")
    return path


def clone(remote: Path, dest: Path, name: str = "Test") -> Path:
    git(remote.parent, "clone", "-q", str(remote), str(dest))
    return identify(dest, name)


@pytest.fixture()
def remote(tmp_path: Path) -> Path:
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    return bare


@pytest.fixture()
def work(tmp_path: Path, remote: Path) -> Path:
    return init_work(tmp_path / "work", remote)


def on_remote(remote: Path) -> list[str]:
    return git(remote, "ls-tree", "-r", "--name-only", BRANCH).splitlines()


def seed(store: GitArchive) -> None:
    """The same four entries the dir store's tests use."""
    bundle = store.put(b"bundle-1")
    store.append("released", "a", release="a@sha256:" + "1" * 64, evidence={"bundle": bundle})
    report = store.put(b"report")
    store.append("evaluated", "a", env="dev", evidence={"report": report})
    store.append("promoted", "a", env="test")
    store.append("held", "a", env="test")


# round trip, layout, orphan branch ---------------------------------------------------


def test_round_trip_is_pushed_in_the_dir_store_layout(
    work: Path, remote: Path, tmp_path: Path
) -> None:
    store = GitArchive(work)
    digest = store.put(b"bundle")
    assert store.put(b"bundle") == digest and store.has(digest) and store.get(digest) == b"bundle"
    entry = store.append(
        "released", "bot", release="bot@sha256:" + digest, evidence={"bundle": digest}
    )
    second = store.append("evaluated", "bot", env="dev", data={"passRate": 1.0})
    assert (entry.seq, second.seq, second.prev) == (1, 2, entry.hash)
    assert store.entries() == [entry, second]
    assert store.verify().ok
    with pytest.raises(ObjectMissing):
        store.get("f" * 64)
    with pytest.raises(ObjectMissing):
        store.append("evaluated", "bot", evidence={"report": "e" * 64})

    assert on_remote(remote) == [
        "ledger/00000001.json",
        "ledger/00000002.json",
        f"objects/sha256/{digest[:2]}/{digest[2:]}",
    ]
    # Another machine reads the same archive; a plain export of the branch is a dir store.
    assert GitArchive(clone(remote, tmp_path / "other")).entries() == [entry, second]
    export = tmp_path / "export"
    for path in on_remote(remote):
        blob = subprocess.run(
            ["git", "cat-file", "blob", f"{BRANCH}:{path}"],
            cwd=remote,
            capture_output=True,
            check=True,
        )
        (export / path).parent.mkdir(parents=True, exist_ok=True)
        (export / path).write_bytes(blob.stdout)
    exported = DirArchive(export)
    assert exported.entries() == [entry, second] and exported.verify().ok


def test_branch_is_an_orphan_and_the_users_checkout_is_untouched(work: Path, remote: Path) -> None:
    (work / "README.md").write_text("edited, not staged\n")
    (work / "new.txt").write_text("staged\n")
    git(work, "add", "new.txt")
    (work / "untracked.txt").write_text("untracked\n")
    before = (
        git(work, "rev-parse", "HEAD"),
        git(work, "symbolic-ref", "HEAD"),
        git(work, "status", "--porcelain=v1", "--untracked-files=all"),
        (work / ".git" / "index").read_bytes(),
        sorted(p.name for p in work.iterdir()),
    )

    seed(GitArchive(work))

    after = (
        git(work, "rev-parse", "HEAD"),
        git(work, "symbolic-ref", "HEAD"),
        git(work, "status", "--porcelain=v1", "--untracked-files=all"),
        (work / ".git" / "index").read_bytes(),
        sorted(p.name for p in work.iterdir()),
    )
    assert after == before
    assert not (work / ".git" / "FETCH_HEAD").exists()
    for repo in (work, remote):
        assert not ok(repo, "merge-base", "main", BRANCH)  # no common ancestor
        roots = git(repo, "rev-list", "--max-parents=0", BRANCH).splitlines()
        assert len(roots) == 1 and roots[0] != git(repo, "rev-parse", "main")
    assert git(work, "rev-parse", BRANCH) == git(remote, "rev-parse", BRANCH)
    assert git(work, "rev-list", "--count", BRANCH) == "6"  # one commit per write


# concurrency ------------------------------------------------------------------------


def test_rejected_push_is_rebuilt_on_the_new_tip(
    remote: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a = GitArchive(clone(remote, tmp_path / "a", "A"))
    b = GitArchive(clone(remote, tmp_path / "b", "B"))
    first = a.append("released", "x")
    assert b.entries() == [first]  # b has fetched once and will not fetch again for reads
    second = a.append("evaluated", "x")
    assert b.entries() == [first]
    with caplog.at_level(logging.INFO, logger=LOGGER):
        third = b.append("promoted", "x", env="test")
    assert b.push_retries == 1
    assert "rejected" in caplog.text and "re-applying" in caplog.text
    assert (third.seq, third.prev) == (3, second.hash)  # re-sealed, not 00000002.json twice
    assert GitArchive(work := clone(remote, tmp_path / "c")).entries() == [first, second, third]
    assert GitArchive(work).verify().ok


def test_two_machines_appending_at_once_lose_nothing(remote: Path, tmp_path: Path) -> None:
    stores = [GitArchive(clone(remote, tmp_path / f"runner-{w}", f"W{w}")) for w in range(2)]
    start = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def writer(worker: int, store: GitArchive) -> None:
        try:
            digest = store.put(f"report of writer {worker}".encode())
            start.wait()
            for i in range(10):
                store.append(
                    "evaluated", f"app-{worker}", evidence={"report": digest}, data={"i": i}
                )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w, s)) for w, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors

    final = GitArchive(clone(remote, tmp_path / "reader"))
    report = final.verify()
    assert report.ok, report.findings
    assert (report.entries, report.objects) == (20, 2)
    entries = final.entries()
    assert [e.seq for e in entries] == list(range(1, 21))
    for worker in (0, 1):  # each writer's appends, all there and in its order
        mine = [e.data["i"] for e in entries if e.app == f"app-{worker}"]
        assert mine == list(range(10))
    assert len(on_remote(remote)) == 22


def test_writers_sharing_one_clone_serialise_on_the_lock(tmp_path: Path) -> None:
    repo = init_work(tmp_path / "solo", None)
    stores = [GitArchive(repo) for _ in range(2)]
    threads = [
        threading.Thread(target=lambda s=s, w=w: [s.append("held", f"app-{w}") for _ in range(5)])
        for w, s in enumerate(stores)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [e.seq for e in GitArchive(repo).entries()] == list(range(1, 11))
    assert GitArchive(repo).verify().ok


# no remote, unreachable remote ------------------------------------------------------


def test_without_a_remote_commits_locally_and_publishes_later(
    tmp_path: Path, remote: Path, caplog: pytest.LogCaptureFixture
) -> None:
    repo = init_work(tmp_path / "laptop", None, who=False)  # no identity either, as on CI
    store = GitArchive(repo)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        seed(store)
    said = [r for r in caplog.records if "no remote 'origin'" in r.getMessage()]
    assert len(said) == 1 and "kept locally without pushing" in said[0].getMessage()
    assert len(git(repo, "rev-list", BRANCH).splitlines()) == 6
    assert GitArchive(repo).verify().ok

    git(repo, "remote", "add", "origin", str(remote))
    shared = GitArchive(repo)
    shared.append("unheld", "a", env="test")
    assert len(on_remote(remote)) == 7 and git(remote, "rev-parse", BRANCH) == git(
        repo, "rev-parse", BRANCH
    )


def test_unreachable_remote_is_one_clean_line_without_the_credential(
    work: Path, caplog: pytest.LogCaptureFixture
) -> None:
    git(work, "remote", "set-url", "origin", UNREACHABLE)
    with pytest.raises(ExternalError) as info:
        GitArchive(work).append("released", "x")
    message = str(info.value)
    assert message.startswith("git fetch origin llmops/archive failed: ")
    assert message.endswith("; check the remote URL and credentials")
    assert "\n" not in message and "127.0.0.1" in message
    assert "s3cr3t" not in message and "s3cr3t" not in str(info.value.__cause__)
    assert "s3cr3t" not in caplog.text


def test_push_failure_records_nothing_and_names_the_push(work: Path) -> None:
    git(work, "remote", "set-url", "--push", "origin", UNREACHABLE)  # fetch works, push cannot
    with pytest.raises(ExternalError) as info:
        GitArchive(work).append("released", "x")
    message = str(info.value)
    assert message.startswith("git push origin llmops/archive failed: ")
    assert "check the remote URL and credentials" in message and "s3cr3t" not in message
    assert not ok(work, "rev-parse", "--verify", BRANCH)  # the local branch did not move
    assert GitArchive(work).entries() == []


def test_a_silent_remote_times_out_with_a_clean_message(work: Path) -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://deploy:s3cr3t-t0ken@127.0.0.1:{silent.getsockname()[1]}/archive.git"
        git(work, "remote", "set-url", "origin", url)
        with pytest.raises(ExternalError) as info:
            GitArchive(work, network_timeout=0.3).append("released", "x")
    assert str(info.value) == (
        "git fetch origin llmops/archive failed: no answer within 0.3 s; "
        "check the remote URL and credentials"
    )


def test_reads_fall_back_to_the_local_copy_with_a_warning(
    seeded: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    work = seeded[0]
    git(work, "remote", "set-url", "origin", UNREACHABLE)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert len(GitArchive(work).entries()) == 4
    assert "reading the local copy" in caplog.text and "s3cr3t" not in caplog.text


def test_the_branch_checked_out_by_hand_is_not_written(seeded: tuple[Path, Path]) -> None:
    work = seeded[0]
    git(work, "switch", "-q", BRANCH)
    with pytest.raises(UsageError, match="checked out"):
        GitArchive(work).append("held", "a")
    assert len(GitArchive(work).entries()) == 4  # reading is fine


def test_a_bare_repository_works_too(tmp_path: Path) -> None:
    bare = tmp_path / "mirror.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    seed(GitArchive(identify(bare)))
    assert GitArchive(bare).verify().ok and len(git(bare, "rev-list", BRANCH).splitlines()) == 6


def test_credentials_are_scrubbed_from_urls() -> None:
    text = "fatal: unable to access 'https://user:tok@en@github.com/o/r.git/': 403 (http://x@h/p)"
    assert scrub(text) == "fatal: unable to access 'https://github.com/o/r.git/': 403 (http://h/p)"


def test_bad_names_are_refused(work: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="remote"):
        GitArchive(work, remote="--upload-pack=touch /tmp/pwned")
    with pytest.raises(UsageError, match="branch"):
        GitArchive(work, branch="bad..name")
    (tmp_path / "plain").mkdir()
    with pytest.raises(UsageError, match="git repository"):
        GitArchive(tmp_path / "plain")


def test_a_rewritten_remote_branch_is_reported(seeded: tuple[Path, Path], tmp_path: Path) -> None:
    work, remote = seeded
    other = clone(remote, tmp_path / "rewriter")
    git(other, "switch", "-q", BRANCH)
    git(other, "commit", "-q", "--amend", "-m", "rewritten")
    git(other, "push", "-q", "--force", "origin", BRANCH)
    with pytest.raises(GitBranchDiverged, match="diverged"):
        GitArchive(work).entries()


# tampering on the branch ------------------------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A remote and a clone holding the dir store tests' four entries, made once."""
    root = tmp_path_factory.mktemp("template")
    git(root, "init", "-q", "--bare", "-b", "main", "remote.git")
    seed(GitArchive(init_work(root / "work", root / "remote.git")))
    return root


@pytest.fixture()
def seeded(template: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A fresh copy of ``template``: (the user's repository, its remote)."""
    shutil.copytree(template, tmp_path / "seeded", symlinks=True)
    work, remote = tmp_path / "seeded" / "work", tmp_path / "seeded" / "remote.git"
    git(work, "remote", "set-url", "origin", str(remote))
    return work, remote


def tamper(remote: Path, tmp_path: Path, edit: Callable[[Path], None]) -> None:
    """Someone edits the archive branch in their own clone and pushes a new commit."""
    other = clone(remote, tmp_path / "tamper", "Mallory")
    git(other, "switch", "-q", BRANCH)
    edit(other)
    git(other, "add", "-A")
    git(other, "commit", "-qm", "tamper")
    git(other, "push", "-q", "origin", BRANCH)


def entry_file(repo: Path, seq: int) -> Path:
    return repo / "ledger" / f"{seq:08d}.json"


def object_file(repo: Path, digest: str) -> Path:
    return repo / "objects" / "sha256" / digest[:2] / digest[2:]


def test_intact_archive_verifies(seeded: tuple[Path, Path]) -> None:
    report = GitArchive(seeded[0]).verify()
    assert report.ok, report.findings
    assert (report.entries, report.objects) == (4, 2)


def test_flipped_byte_is_found(seeded: tuple[Path, Path], tmp_path: Path) -> None:
    work, remote = seeded

    def flip(repo: Path) -> None:
        path = entry_file(repo, 2)
        path.write_text(path.read_text().replace('"dev"', '"prd"'))

    tamper(remote, tmp_path, flip)
    findings = GitArchive(work).verify().findings
    assert any(f.where == "ledger entry 2" and "hash" in f.message for f in findings)


def test_dropped_entry_is_found(seeded: tuple[Path, Path], tmp_path: Path) -> None:
    work, remote = seeded
    tamper(remote, tmp_path, lambda repo: entry_file(repo, 2).unlink())
    findings = GitArchive(work).verify().findings
    assert any(f.where == "ledger entry 2" and "sequence number 3" in f.message for f in findings)


def test_reordered_entries_are_found(seeded: tuple[Path, Path], tmp_path: Path) -> None:
    work, remote = seeded

    def swap(repo: Path) -> None:
        a, b = entry_file(repo, 2), entry_file(repo, 3)
        ta, tb = a.read_text(), b.read_text()
        a.write_text(tb)
        b.write_text(ta)

    tamper(remote, tmp_path, swap)
    findings = GitArchive(work).verify().findings
    assert any(f.where == "ledger entry 2" for f in findings)
    assert any("link" in f.message or "sequence" in f.message for f in findings)


def test_deleted_object_is_found(seeded: tuple[Path, Path], tmp_path: Path) -> None:
    work, remote = seeded
    digest = GitArchive(work).entries()[1].evidence["report"]
    tamper(remote, tmp_path, lambda repo: object_file(repo, digest).unlink())
    findings = GitArchive(work).verify().findings
    assert any(f.where == "ledger entry 2" and digest in f.message for f in findings)


def test_corrupted_object_is_found(seeded: tuple[Path, Path], tmp_path: Path) -> None:
    work, remote = seeded
    digest = GitArchive(work).entries()[0].evidence["bundle"]
    tamper(remote, tmp_path, lambda repo: object_file(repo, digest).write_bytes(b"evil"))
    assert any(f.where == f"object {digest}" for f in GitArchive(work).verify().findings)
    with pytest.raises(ArchiveCorrupt):
        GitArchive(work).get(digest)


def test_a_truncated_entry_is_named(seeded: tuple[Path, Path], tmp_path: Path) -> None:
    work, remote = seeded
    tamper(remote, tmp_path, lambda repo: entry_file(repo, 4).write_text('{"seq": 4'))
    assert any("00000004.json" in f.where for f in GitArchive(work).verify().findings)
    with pytest.raises(ArchiveCorrupt, match=r"00000004\.json"):
        GitArchive(work).entries()


# wired into the release use case ----------------------------------------------------


def test_release_create_records_on_the_branch_and_pushes(tmp_path: Path, remote: Path) -> None:
    repo = tmp_path / "app-repo"
    for part in ("manifests", "environments", "pipelines"):
        shutil.copytree(ROOT / part, repo / part)
    pipeline = repo / "pipelines" / "default.yaml"
    text = pipeline.read_text()
    assert "type: dir\n    path: .llmops/archive\n" in text
    pipeline.write_text(text.replace("type: dir\n    path: .llmops/archive\n", "type: git\n"))
    init_work(repo, remote)

    created = api.release_create(repo, "support-bot")
    assert created.created and created.entry.seq == 1
    digest = created.release_id.split(":", 1)[1]
    assert on_remote(remote) == [
        "ledger/00000001.json",
        f"objects/sha256/{digest[:2]}/{digest[2:]}",
    ]
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert not (repo / ".llmops").exists()

    assert not api.release_create(repo, "support-bot").created  # idempotent
    listed = api.release_list(repo)
    assert [r.release_id for r in listed] == [created.release_id]
    assert listed[0].commit == git(repo, "rev-parse", "HEAD")
    assert api.archive_verify(repo).ok
