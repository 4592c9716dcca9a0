"""Read one repository's manifest files: size and encoding checks, safe YAML, kind
dispatch and model validation, collecting every problem as a diagnostic.

Called by ``llmops.manifests.repository``; cross-file checks live in ``xref``.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from llmops.domain.diagnostics import Diagnostic, Severity
from llmops.domain.models import API_VERSION, KINDS
from llmops.manifests.messages import diagnostics_from, dotted, show
from llmops.manifests.yamldoc import Mark, YamlDoc, YamlError, parse

MAX_MANIFEST_BYTES = 1024 * 1024
MAX_TEMPLATE_BYTES = 256 * 1024
MAX_DATA_BYTES = 64 * 1024 * 1024

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Parsed(Generic[M]):
    """A manifest file after loading: the model when valid, the YAML document when parsable."""

    model: M | None
    doc: YamlDoc | None
    file: str
    path: Path


@dataclass
class Context:
    """State of one validation run: the repository root and the diagnostics so far."""

    root: Path
    prefix: str = ""
    diagnostics: list[Diagnostic] = field(default_factory=list)
    files: int = 0

    def __post_init__(self) -> None:
        self._real_dirs: dict[str, str] = {}
        self._root_str = str(self.root)
        self._root_prefix = self._root_str.rstrip(os.sep) + os.sep
        #: every file this run read or looked for (``llmops.manifests.incremental``)
        self.touched: set[str] = set()

    def display(self, path: Path) -> str:
        # ``path.relative_to(self.root).as_posix()`` (or the path itself when outside),
        # on the string: Path objects are already normalised, and POSIX paths print as is.
        text = os.fspath(path)
        if text.startswith(self._root_prefix):
            rel = text[len(self._root_prefix) :]
        elif text == self._root_str:
            rel = "."
        else:
            rel = text
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def report(
        self,
        file: str,
        mark: Mark | None,
        path: tuple[str | int, ...] | str,
        message: str,
        severity: Severity = "error",
    ) -> None:
        line, column = (mark.line, mark.column) if mark else (0, 0)
        where = path if isinstance(path, str) else dotted(path)
        self.diagnostics.append(Diagnostic(file, line, column, where, message, severity))

    def read_text(self, path: Path, limit: int, what: str) -> str | None:
        """The file's text, or None after reporting why it cannot be used."""
        self.touched.add(os.fspath(path))
        raw = _read_small(path, limit)
        if raw is not None:
            return self._decode(path, raw, what)
        file = self.display(path)
        try:
            size = path.stat().st_size
            if size > limit:
                self.report(
                    file,
                    None,
                    "",
                    f"{what} is {size:,} bytes, over the limit of {limit:,} bytes; make it smaller",
                )
                return None
            raw = path.read_bytes()
        except IsADirectoryError:
            self.report(file, None, "", f"expected a {what} file but found a directory")
            return None
        except OSError as exc:
            self.report(file, None, "", f"cannot read {what}: {exc.strerror or exc}")
            return None
        return self._decode(path, raw, what)

    def _decode(self, path: Path, raw: bytes, what: str) -> str | None:
        self.files += 1
        file = self.display(path)
        if b"\x00" in raw:
            self.report(
                file,
                _byte_mark(raw, raw.index(b"\x00")),
                "",
                f"{what} is binary (contains NUL bytes); expected UTF-8 text",
            )
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.report(
                file,
                _byte_mark(raw, exc.start),
                "",
                f"{what} is not UTF-8 text (byte 0x{raw[exc.start]:02x}); save it as UTF-8",
            )
            return None
        return text.removeprefix("\ufeff")

    def inside(self, path: Path, *, is_link: bool | None = None) -> bool:
        """Whether ``path``, symlinks resolved, stays inside the repository.

        Directories are resolved once and remembered; a file that is not itself a
        symlink then needs one ``lstat`` (none when the caller knows ``is_link``)
        instead of one per path component.
        """
        try:
            text = os.fspath(path)
            return self._inside(text, os.path.islink(text) if is_link is None else is_link)
        except (OSError, ValueError):
            return False

    def _inside(self, text: str, is_link: bool) -> bool:
        parent, name = os.path.split(text)
        real_parent = self._real_dir(parent)
        if name in ("", ".", "..") or is_link:
            real = os.path.realpath(text)
        else:
            real = os.path.join(real_parent, name)
        return real == self._root_str or real.startswith(self._root_prefix)

    def _real_dir(self, directory: str) -> str:
        """``os.path.realpath(directory)``, remembered; built on the parent's when the
        directory is not a symlink itself, so each new directory costs one ``lstat``."""
        real = self._real_dirs.get(directory)
        if real is None:
            head, name = os.path.split(directory)
            if name in ("", ".") or not head or head == directory or ".." in directory:
                real = os.path.realpath(directory or ".")
            elif os.path.islink(directory):
                real = os.path.realpath(directory)
            else:
                real = os.path.join(self._real_dir(head), name)
            self._real_dirs[directory] = real
        return real

    def referenced_file(
        self,
        base_dir: Path,
        rel: str,
        owner: Parsed[Any],
        field_path: tuple[str | int, ...],
        what: str,
    ) -> Path | None:
        """Resolve a file a manifest references; report if missing or outside the repo."""
        target = base_dir / rel
        text = os.fspath(target)
        self.touched.add(text)
        # One lstat answers "a symlink?", "a regular file?" and "there?" for a path that
        # is not a symlink; a symlink is followed as before.
        try:
            info: os.stat_result | None = os.lstat(text)
        except (OSError, ValueError):
            info = None
        is_link = info is not None and stat.S_ISLNK(info.st_mode)
        if is_link or info is None:
            is_file, exists = os.path.isfile(text), os.path.exists(text)
        else:
            is_file, exists = stat.S_ISREG(info.st_mode), True
        try:
            inside = self._inside(text, is_link)
        except (OSError, ValueError):
            inside = False
        problem = None
        if not inside:
            problem = f"{what} {rel!r} resolves outside the repository (a symlink?)"
        elif not is_file:
            if exists:
                problem = f"{what} {rel!r} is not a regular file"
            else:
                hint = _similar_file(target)
                problem = f"{what} {rel!r} does not exist (looked for {self.display(target)}){hint}"
        if problem is None:
            return target
        mark = owner.doc.mark_for(field_path) if owner.doc else None
        self.report(owner.file, mark, field_path, problem)
        return None

    def load(self, path: Path, kind: str) -> Parsed[Any]:
        """Read, parse and validate one manifest expected to be of ``kind``."""
        file = self.display(path)
        text = self.read_text(path, MAX_MANIFEST_BYTES, "manifest")
        if text is None:
            return Parsed(None, None, file, path)
        try:
            doc = parse(text)
        except YamlError as exc:
            self.report(file, exc.mark, exc.path, exc.message)
            return Parsed(None, None, file, path)
        model = KINDS[kind]
        data = doc.data
        if data is None:
            what = "is empty" if not text.strip() else "holds no YAML value (only comments or null)"
            self.report(
                file,
                Mark(1, 1),
                "",
                f"file {what}; expected {_a(kind)} manifest (see `llmops schema {kind}`)",
            )
            return Parsed(None, doc, file, path)
        if not isinstance(data, dict):
            self.report(
                file,
                doc.mark_for(()),
                "",
                f"a manifest must be a mapping with apiVersion, kind, metadata and spec "
                f"(got {type(data).__name__}); expected {_a(kind)}",
            )
            return Parsed(None, doc, file, path)
        found_kind = data.get("kind")
        if found_kind != kind:
            if "kind" not in data:
                message = f"required field 'kind' is missing; add kind: {kind}"
                mark = doc.mark_for(())
            else:
                message = f"expected kind {kind} here (got {show(found_kind)})"
                if isinstance(found_kind, str) and found_kind in KINDS:
                    message += f"; {_a(str(found_kind))} belongs {_home(str(found_kind))}"
                mark = doc.mark_for(("kind",))
            self.report(file, mark, "kind", message)
            return Parsed(None, doc, file, path)
        if data.get("apiVersion") != API_VERSION:
            got = data.get("apiVersion")
            self.report(
                file,
                doc.mark_for(("apiVersion",)),
                "apiVersion",
                f"must be {API_VERSION} (got {show(got)})" if got is not None
                else f"required field 'apiVersion' is missing; add apiVersion: {API_VERSION}",
            )
            return Parsed(None, doc, file, path)
        try:
            validated = model.model_validate(data)
        except ValidationError as exc:
            self.diagnostics.extend(diagnostics_from(exc, doc, file, model))
            return Parsed(None, doc, file, path)
        return Parsed(validated, doc, file, path)


def _read_small(path: Path, limit: int) -> bytes | None:
    """The bytes of a regular file of at most ``limit`` bytes; None for anything else
    (the caller then takes the slow path, which words the problem).

    Plain ``os`` calls: open, fstat, read to the end, close. ``open()`` adds an isatty
    ioctl, seeks and fstats of its own: twice the system calls, per file.
    """
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        parts = []
        while block := os.read(fd, max(info.st_size + 1, 8192)):
            parts.append(block)
        return b"".join(parts)
    except OSError:
        return None
    finally:
        os.close(fd)


_READ_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def _byte_mark(raw: bytes, offset: int) -> Mark:
    """The 1-based line and column (in bytes) of ``offset`` in ``raw``."""
    line = raw.count(b"\n", 0, offset) + 1
    return Mark(line, offset - (raw.rfind(b"\n", 0, offset) + 1) + 1)


def _a(kind: str) -> str:
    """``kind`` with its indefinite article: an LLMApp, an EvalSuite, a Pipeline."""
    return f"{'an' if kind[:1] in 'AEILOU' else 'a'} {kind}"


def _home(kind: str) -> str:
    return {
        "LLMApp": "in manifests/<app>/app.yaml",
        "EvalSuite": "in a file listed under an app's spec.evals",
        "Environment": "in environments/<env>.yaml",
        "Pipeline": "in pipelines/<name>.yaml",
    }[kind]


def _similar_file(target: Path) -> str:
    import difflib

    try:
        siblings = [p.name for p in target.parent.iterdir()] if target.parent.is_dir() else []
    except OSError:
        return ""
    close = difflib.get_close_matches(target.name, siblings, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def yaml_files(directory: Path) -> list[Path]:
    """The ``.yaml``/``.yml`` files directly in ``directory``, sorted; none if absent."""
    if not directory.is_dir():
        return []
    return sorted(
        p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and not p.name.startswith(".")
    )


def is_dir_inside(ctx: Context, path: Path) -> bool:
    return os.path.isdir(path) and ctx.inside(path)
