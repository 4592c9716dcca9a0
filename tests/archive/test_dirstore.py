"""The dir archive: atomic objects, a hash-chained ledger, tamper detection, concurrent writers."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from llmops.archive import DirArchive
from llmops.archive.base import ArchiveCorrupt, ObjectMissing


@pytest.fixture()
def archive(tmp_path: Path) -> DirArchive:
    store = DirArchive(tmp_path / "archive")
    bundle = store.put(b"bundle-1")
    store.append("released", "a", release="a@sha256:" + "1" * 64, evidence={"bundle": bundle})
    report = store.put(b"report")
    store.append("evaluated", "a", env="dev", evidence={"report": report})
    store.append("promoted", "a", env="test")
    store.append("held", "a", env="test")
    return store


def test_objects_are_content_addressed_and_idempotent(archive: DirArchive) -> None:
    digest = archive.put(b"x")
    assert archive.put(b"x") == digest
    assert archive.get(digest) == b"x"
    with pytest.raises(ObjectMissing):
        archive.get("f" * 64)


def test_intact_archive_verifies(archive: DirArchive) -> None:
    report = archive.verify()
    assert report.ok, report.findings
    assert report.entries == 4 and report.objects == 2
    assert [e.seq for e in archive.entries()] == [1, 2, 3, 4]


def _entry(archive: DirArchive, seq: int) -> Path:
    return archive.ledger / f"{seq:08d}.json"


def test_flipped_byte_is_found(archive: DirArchive) -> None:
    path = _entry(archive, 2)
    path.write_text(path.read_text().replace('"dev"', '"prd"'))
    findings = archive.verify().findings
    assert any(f.where == "ledger entry 2" and "hash" in f.message for f in findings)


def test_dropped_entry_is_found(archive: DirArchive) -> None:
    _entry(archive, 2).unlink()
    findings = archive.verify().findings
    assert any(f.where == "ledger entry 2" and "sequence number 3" in f.message for f in findings)


def test_reordered_entries_are_found(archive: DirArchive) -> None:
    a, b = _entry(archive, 2), _entry(archive, 3)
    ta, tb = a.read_text(), b.read_text()
    a.write_text(tb)
    b.write_text(ta)
    findings = archive.verify().findings
    assert any(f.where == "ledger entry 2" for f in findings)
    assert any("link" in f.message or "sequence" in f.message for f in findings)


def test_deleted_object_is_found(archive: DirArchive) -> None:
    report_digest = archive.entries()[1].evidence["report"]
    archive._object_path(report_digest).unlink()
    findings = archive.verify().findings
    assert any(f.where == "ledger entry 2" and report_digest in f.message for f in findings)


def test_corrupted_object_is_found(archive: DirArchive) -> None:
    digest = archive.entries()[0].evidence["bundle"]
    archive._object_path(digest).write_bytes(b"evil")
    assert any(f.where == f"object {digest}" for f in archive.verify().findings)
    with pytest.raises(ArchiveCorrupt):
        archive.get(digest)


def test_truncated_entry_is_found(archive: DirArchive) -> None:
    path = _entry(archive, 4)
    path.write_text(path.read_text()[:20])
    findings = archive.verify().findings
    assert any("00000004.json" in f.where for f in findings)


def test_evidence_must_exist_before_the_entry(archive: DirArchive) -> None:
    with pytest.raises(ObjectMissing):
        archive.append("evaluated", "a", evidence={"report": "e" * 64})
    assert len(archive.entries()) == 4


def _writer(root: str, worker: int, count: int) -> None:
    store = DirArchive(Path(root))
    for i in range(count):
        digest = store.put(json.dumps({"w": worker, "i": i}).encode())
        store.append("evaluated", f"app-{worker}", evidence={"report": digest})


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(root), w, 25)) for w in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    store = DirArchive(root)
    report = store.verify()
    assert report.ok, report.findings
    assert report.entries == 100 and report.objects == 100
    per_app = {f"app-{w}": 0 for w in range(4)}
    for entry in store.entries():
        per_app[entry.app] += 1
    assert set(per_app.values()) == {25}


def test_verify_refuses_a_path_that_is_no_archive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from llmops.cli.main import main

    root = Path(__file__).resolve().parents[2]
    with pytest.raises(SystemExit) as exit_info:
        main(["archive", "verify", "--path", str(root), "--archive", str(tmp_path / "typo")])
    assert exit_info.value.code == 2
    assert "no archive at" in capsys.readouterr().err


def test_entries_read_again_see_what_another_writer_appended(tmp_path: Path) -> None:
    reader = DirArchive(tmp_path / "a")
    writer = DirArchive(tmp_path / "a")
    first = writer.append("released", "bot", release="bot@sha256:" + "1" * 64)
    assert [e.hash for e in reader.entries()] == [first.hash]
    second = writer.append("deployed", "bot", release="bot@sha256:" + "1" * 64, env="dev")
    third = writer.append("deployed", "sum", release="sum@sha256:" + "2" * 64, env="dev")
    seen = reader.entries()
    assert [e.hash for e in seen] == [first.hash, second.hash, third.hash]
    seen.clear()  # a caller's list is its own
    assert len(reader.entries()) == 3


def test_entries_follow_a_ledger_replaced_under_the_reader(tmp_path: Path) -> None:
    reader = DirArchive(tmp_path / "a")
    DirArchive(tmp_path / "a").append("released", "bot", release="bot@sha256:" + "1" * 64)
    assert len(reader.entries()) == 1
    # the ledger is replaced by another one (a restore from backup): names no longer match
    for path in (tmp_path / "a" / "ledger").iterdir():
        path.unlink()
    other = DirArchive(tmp_path / "a")
    for app in ("x", "y"):
        other.append("released", app, release=f"{app}@sha256:" + "3" * 64)
    assert [e.app for e in reader.entries()] == ["x", "y"]
