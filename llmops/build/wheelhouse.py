"""What the image installs, prepared on the host so the docker build needs no network.

Called by ``llmops.ops.build``:

- the llmops wheel, built from the source tree llmops runs from (``pip wheel --no-deps``
  on a clean copy of the package files) and cached under
  ``<cache>/llmops-wheel/<hash of those files>/``;
- the dependency wheelhouse: llmops's runtime requirements (read from that wheel's
  metadata) downloaded as binary wheels for the *target* Python and platform
  (``pip download --only-binary=:all: --python-version X --implementation cp
  --platform manylinux_2_36_<arch> … manylinux2014_<arch>``) and cached under
  ``<cache>/wheelhouse/<hash of requirements + python + platforms>/``.

``<cache>`` is ``$LLMOPS_CACHE_DIR``, else ``$XDG_CACHE_HOME/llmops``, else
``~/.cache/llmops``. Cache entries are written to a temporary directory and renamed into
place, so an interrupted run leaves nothing half-made.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

from llmops.domain.errors import ExternalError, UsageError

#: the newest glibc of the manylinux wheels accepted (Debian 12 "bookworm" has 2.36)
DEFAULT_GLIBC = (2, 36)
_ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
_SOURCE_DATE_EPOCH = "315532800"  # 1980-01-01, the earliest time a zip can hold
_TAIL = 12

Runner = Callable[[Sequence[str], Path], "subprocess.CompletedProcess[str]"]


@dataclass(frozen=True, slots=True)
class Wheelhouse:
    """A directory of wheels plus ``requirements.txt``, for one Python and platform."""

    path: Path
    key: str
    python: str
    platforms: tuple[str, ...]
    requirements: tuple[str, ...]
    #: False when it came from the cache
    prepared: bool

    @property
    def files(self) -> tuple[Path, ...]:
        return tuple(sorted(p for p in self.path.iterdir() if p.is_file()))


@dataclass(frozen=True, slots=True)
class LlmopsWheel:
    """The llmops wheel the image installs."""

    path: Path
    key: str
    #: False when it came from the cache
    built: bool

    def requirements(self) -> tuple[str, ...]:
        """The runtime requirements in the wheel's metadata (extras left out)."""
        with zipfile.ZipFile(self.path) as wheel:
            name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
            metadata = Parser().parsestr(wheel.read(name).decode("utf-8"))
        return runtime_requirements(metadata.get_all("Requires-Dist") or [])


def cache_root(environ: dict[str, str] | None = None) -> Path:
    """Where llmops keeps wheels between builds."""
    env = os.environ if environ is None else environ
    if env.get("LLMOPS_CACHE_DIR"):
        return Path(env["LLMOPS_CACHE_DIR"])
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "llmops"


def runtime_requirements(requires: Iterable[str]) -> tuple[str, ...]:
    """``Requires-Dist`` values without the ones only an extra asks for, sorted."""
    kept = []
    for requirement in requires:
        marker = requirement.partition(";")[2]
        if "extra" in marker.replace(" ", ""):
            continue
        kept.append(requirement.strip())
    return tuple(sorted(kept, key=str.lower))


def normalise_arch(arch: str) -> str:
    """The manylinux name of an engine's architecture (``amd64`` → ``x86_64``)."""
    found = _ARCHES.get(arch.lower())
    if found is None:
        raise UsageError(
            f"the Docker Engine runs on {arch!r}; llmops prepares wheels for "
            f"{', '.join(sorted(set(_ARCHES.values())))} only"
        )
    return found


def platform_tags(arch: str, glibc: tuple[int, int] = DEFAULT_GLIBC) -> tuple[str, ...]:
    """Every manylinux tag a wheel may carry to run on ``arch`` with ``glibc``, newest first.

    pip does not expand ``manylinux_2_X`` to older tags itself, so they are all listed;
    ``manylinux2014`` brings ``manylinux2010`` and ``manylinux1`` with it.
    """
    arch = normalise_arch(arch)
    major, newest = glibc
    tags = [f"manylinux_{major}_{minor}_{arch}" for minor in range(newest, 16, -1)]
    return (*tags, f"manylinux2014_{arch}")


def wheelhouse_key(requirements: Sequence[str], python: str, platforms: Sequence[str]) -> str:
    body = "\n".join(["wheelhouse/1", f"python={python}", *platforms, "--", *requirements])
    return hashlib.sha256(body.encode()).hexdigest()


def _run(args: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
        "SOURCE_DATE_EPOCH": _SOURCE_DATE_EPOCH,
    }
    return subprocess.run(
        list(args), cwd=cwd, capture_output=True, text=True, env=env, timeout=900, check=False
    )


def _tail(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [
        line
        for line in (proc.stdout + proc.stderr).splitlines()
        if line.strip() and "is ignored: it is neither a file nor a directory" not in line
    ]
    return "\n".join(lines[-_TAIL:])


def _publish(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final``; another process may have won the race, which is fine."""
    try:
        tmp.rename(final)
    except OSError:
        if not final.is_dir():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def ensure_wheelhouse(
    requirements: Sequence[str],
    python: str,
    platforms: Sequence[str],
    cache: Path,
    run: Runner = _run,
) -> Wheelhouse:
    """The cached wheelhouse for these inputs, downloading it first when missing."""
    key = wheelhouse_key(requirements, python, platforms)
    final = cache / "wheelhouse" / key
    found = Wheelhouse(final, key, python, tuple(platforms), tuple(requirements), False)
    if (final / "requirements.txt").is_file():
        return found
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=final.parent))
    try:
        args = [
            sys.executable, "-m", "pip", "download", "--quiet",
            "--only-binary=:all:", "--implementation", "cp", "--python-version", python,
            *(f"--platform={p}" for p in platforms),
            "--dest", str(tmp), *requirements,
        ]  # fmt: skip
        proc = run(args, tmp)
        if proc.returncode != 0:
            raise ExternalError(
                f"could not download the wheels for Python {python} ({platforms[0]}…): "
                f"pip download exited {proc.returncode}; is the package index reachable "
                f"(pip config list)?\n{_tail(proc)}"
            )
        (tmp / "requirements.txt").write_text("\n".join(requirements) + "\n", encoding="utf-8")
        _publish(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return Wheelhouse(final, key, python, tuple(platforms), tuple(requirements), True)


# --- the llmops wheel ----------------------------------------------------------------


def source_tree(package_file: str) -> Path:
    """The source tree llmops runs from (the directory with its pyproject.toml).

    ``package_file`` is ``llmops.__file__``. ``UsageError`` when llmops was installed
    from a wheel: the image is built from source, so install with ``pip install -e``.
    """
    root = Path(package_file).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    try:
        name = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["name"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        name = None
    if name != "llmops":
        raise UsageError(
            f"llmops is not running from its source tree ({root} has no llmops pyproject.toml); "
            "llmops build installs llmops into the image from source: clone it and "
            "`pip install -e .`"
        )
    return root


def package_files(root: Path) -> list[Path]:
    """The files the llmops wheel is built from, relative to ``root``, sorted."""
    files = [Path("pyproject.toml")]
    files += [
        p.relative_to(root)
        for p in root.iterdir()
        if p.is_file() and p.name.upper().startswith(("README", "LICENSE", "LICENCE", "NOTICE"))
    ]
    for path in (root / "llmops").rglob("*"):
        rel = path.relative_to(root)
        if path.is_file() and "__pycache__" not in rel.parts and path.suffix not in (".pyc", ".pyo"):
            files.append(rel)
    return sorted(set(files))


def package_key(root: Path, files: Sequence[Path]) -> str:
    digest = hashlib.sha256(b"llmops-wheel/1\n")
    for rel in files:
        data = (root / rel).read_bytes()
        digest.update(f"{rel.as_posix()}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def ensure_llmops_wheel(root: Path, cache: Path, run: Runner = _run) -> LlmopsWheel:
    """The llmops wheel of the source tree ``root``, built once per content."""
    files = package_files(root)
    key = package_key(root, files)
    final = cache / "llmops-wheel" / key
    existing = sorted(final.glob("llmops-*.whl")) if final.is_dir() else []
    if existing:
        return LlmopsWheel(existing[0], key, False)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=final.parent))
    try:
        src = tmp / "src"
        for rel in files:
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / rel, src / rel)
        out = tmp / "out"
        proc = run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(src)],
            tmp,
        )
        wheels = sorted(out.glob("llmops-*.whl")) if out.is_dir() else []
        if proc.returncode != 0 or not wheels:
            raise ExternalError(
                f"could not build the llmops wheel from {root}: pip wheel exited "
                f"{proc.returncode}\n{_tail(proc)}"
            )
        shutil.rmtree(src)
        keep = tmp / "wheel"
        keep.mkdir()
        wheels[0].rename(keep / wheels[0].name)
        _publish(keep, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return LlmopsWheel(final / wheels[0].name, key, True)
