"""``llmops build``: the release image of one app, built once per release and pushed once.

Called by ``llmops.cli.build``. Pure parts live in ``llmops.build`` (Dockerfile, context
tar, wheelhouse); the engine and registry are reached through
``llmops.adapters.docker_engine``. The image is tagged ``<repository>:<release digest>``
(``llmops.deploy.images``), so:

- the engine already has the tag → no build;
- the registry already has the tag → no build and no push;
- each image is recorded once in the archive ledger as event ``built`` with
  ``{"image": "<repo>@sha256:<manifest digest>" (pushed) or "<repo>:<tag>" (local only),
  "tag": "<repo>:<tag>", "imageId": "sha256:…"}``.

The release is ``--release``, else the environment's pin, else the work tree's release
(archived first, like ``llmops release create``).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import llmops
from llmops.adapters.docker_engine import BuildFailed, DockerEngine, registry_host
from llmops.archive.base import Archive
from llmops.build.context import make_context
from llmops.build.dockerfile import (
    BUNDLE_FILE,
    DEFAULT_BASE_IMAGE,
    DIST_DIR,
    REQUIREMENTS_FILE,
    WHEELS_DIR,
    ControllerDockerfileSpec,
    DockerfileSpec,
    check_base_image,
    check_python,
    git_missing_message,
    image_labels,
    python_of,
    render_controller_dockerfile,
    render_dockerfile,
)
from llmops.build.wheelhouse import (
    cache_root,
    ensure_llmops_wheel,
    ensure_wheelhouse,
    platform_tags,
    source_tree,
    wheelhouse_key,
)
from llmops.deploy.images import DEFAULT_REPOSITORY_PREFIX, image_repository, image_tag
from llmops.domain.archive import LedgerEntry
from llmops.domain.deploy import MANAGED_BY, MANAGED_BY_LABEL, RELEASE_ANNOTATION
from llmops.domain.errors import ExternalError, UsageError
from llmops.domain.models.environment import Environment
from llmops.domain.repo import Repo
from llmops.ops.release import create_release, resolve, work_bundle
from llmops.releases.bundle import Bundle

BuildAction = Literal["build", "skip", "unknown"]
PushAction = Literal["push", "skip", "unknown", "none"]
ReleaseSource = Literal["--release", "pin", "work tree"]
EngineFactory = Callable[[], DockerEngine]
OnLine = Callable[[str], None]

#: the Python the image's wheels are for when neither --python nor the base image says
DEFAULT_PYTHON = "3.12"


@dataclass(frozen=True, slots=True)
class BuildPlan:
    """What ``llmops build`` will do (or did) for one app; ``--dry-run`` prints this."""

    app: str
    release: str
    release_source: ReleaseSource
    repository: str
    tag: str
    base_image: str
    python: str
    dockerfile: str
    labels: dict[str, str]
    build: BuildAction
    build_reason: str
    push: PushAction
    push_reason: str
    #: the image the engine has under the tag, when it has it
    local_image_id: str | None = None
    #: the manifest digest the registry has under the tag, when it has it
    registry_digest: str | None = None

    @property
    def reference(self) -> str:
        """``<repository>:<tag>``."""
        return f"{self.repository}:{self.tag}"


@dataclass(frozen=True, slots=True)
class BuildResult:
    """What ``llmops build`` did."""

    plan: BuildPlan
    dry_run: bool
    built: bool = False
    pushed: bool = False
    #: ``<repo>@sha256:<manifest digest>`` when in a registry, else ``<repo>:<tag>``
    image: str | None = None
    image_id: str | None = None
    digest: str | None = None
    steps: int = 0
    cached_steps: int = 0
    #: the ledger event written, None when the same image was recorded already
    recorded: LedgerEntry | None = None
    release_created: bool = False
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def builds(self) -> int:
        return 1 if self.built else 0

    @property
    def pushes(self) -> int:
        return 1 if self.pushed else 0


def _release(
    repo: Repo,
    app: str,
    archive: Archive,
    env: str | None,
    release_ref: str | None,
    dry_run: bool,
) -> tuple[Bundle, ReleaseSource, bool]:
    if release_ref is not None:
        bundle = resolve(repo, archive, release_ref)
        if bundle.app != app:
            raise UsageError(f"release {bundle.release_id} is of app {bundle.app!r}, not {app!r}")
        return bundle, "--release", False
    if env is not None:
        pin = repo.environments[env].environment.spec.releases.get(app)
        if pin is not None:
            return resolve(repo, archive, pin), "pin", False
    bundle = work_bundle(repo, app)
    created = False
    if not dry_run:
        created = create_release(repo, app, archive).created
    return bundle, "work tree", created


def _revision(entries: Sequence[LedgerEntry], release: str) -> str | None:
    """The commit the release was made from (clean trees only), from its ledger entry."""
    for entry in entries:
        if entry.event == "released" and entry.release == release:
            commit = entry.data.get("commit")
            if isinstance(commit, str) and commit and not entry.data.get("dirty"):
                return commit
            return None
    return None


def _source(path: Path) -> str | None:
    """The repository's origin URL (credentials stripped), when it has a public-looking one."""
    from llmops.adapters.gitops import GitWorkTree, strip_credentials
    from llmops.domain.errors import LlmopsError

    try:
        url = strip_credentials(GitWorkTree(path).remote_url("origin"))
    except LlmopsError:
        return None
    return url if url.startswith(("https://", "http://", "ssh://", "git@")) else None


def _port(bundle: Bundle) -> int:
    spec: dict[str, Any] = bundle.document["manifest"].get("spec", {})
    port = (spec.get("serving") or {}).get("port", 8080)
    return int(port)


def _already_recorded(
    entries: Sequence[LedgerEntry], plan: BuildPlan, image: str, image_id: str | None
) -> bool:
    """Whether the ledger knows this image: the same image (and id) of the same release;
    when nothing was built or pushed now, any record of the release's tag will do."""
    acted = plan.build == "build" or plan.push == "push"
    for entry in entries:
        if entry.event != "built" or entry.release != plan.release:
            continue
        if entry.data.get("tag") != plan.reference:
            continue
        if not acted:
            return True
        if entry.data.get("image") != image:
            continue
        if "@sha256:" in image or image_id is None or entry.data.get("imageId") == image_id:
            return True
    return False


def check_options(
    repo: Repo,
    app: str,
    *,
    env: str | None,
    release_ref: str | None,
    push: bool,
    base_image: str | None,
    python: str | None,
) -> tuple[Environment | None, str, str]:
    """The environment, base image and Python version asked for; ``UsageError`` for
    anything that cannot work, before any engine, registry or archive is touched."""
    if app not in repo.apps and release_ref is None:
        work_bundle(repo, app)  # raises the usual "no app named" error
    environment = None
    if env is not None:
        source = repo.environments.get(env)
        if source is None:
            known = ", ".join(sorted(repo.environments)) or "none"
            raise UsageError(f"no environment named {env!r} (environments: {known})")
        environment = source.environment
    if push:
        if environment is None:
            raise UsageError("--push needs --env ENV: the environment's spec.registry says where")
        if not environment.spec.registry:
            raise UsageError(
                f"environment {env!r} names no registry to push to; set spec.registry "
                "(e.g. 127.0.0.1:5000/llm-apps)"
            )
    base = check_base_image(base_image or DEFAULT_BASE_IMAGE)
    version = check_python(python or python_of(base) or DEFAULT_PYTHON)
    return environment, base, version


def plan_build(
    repo: Repo,
    app: str,
    archive: Archive,
    *,
    env: str | None = None,
    release_ref: str | None = None,
    push: bool = False,
    base_image: str | None = None,
    python: str | None = None,
    engine: DockerEngine | None = None,
    dry_run: bool = False,
) -> tuple[BuildPlan, Bundle, bool]:
    """The plan, the release bundle, and whether the release was archived just now.

    With ``engine`` None (it could not be reached on a dry run) build and push are
    ``unknown``.
    """
    environment, base, version = check_options(
        repo, app, env=env, release_ref=release_ref, push=push, base_image=base_image, python=python
    )
    bundle, origin, created = _release(repo, app, archive, env, release_ref, dry_run)
    repository = (
        image_repository(environment, app)
        if environment is not None
        else f"{DEFAULT_REPOSITORY_PREFIX}/{app}"
    )
    tag = image_tag(bundle.release_id)
    arch = engine.architecture() if engine is not None else "x86_64"
    platforms = platform_tags(arch)
    labels = image_labels(
        app,
        bundle.release_id,
        source=_source(Path(repo.root)),
        revision=_revision(archive.entries(), bundle.release_id),
    )
    dockerfile = render_dockerfile(
        DockerfileSpec(
            app, _port(bundle), base, version, f"{platforms[0]}…", tuple(labels.items())
        )
    )
    reference = f"{repository}:{tag}"

    build: BuildAction = "unknown"
    build_reason = "the Docker Engine could not be reached"
    push_action: PushAction = "none"
    push_reason = "not asked (--push)"
    local_id: str | None = None
    registry_digest: str | None = None
    if engine is not None:
        local = engine.image(reference)
        if local is not None and local.labels.get(RELEASE_ANNOTATION) == bundle.release_id:
            build, build_reason, local_id = "skip", f"the engine has {reference}", local.id
        else:
            build, build_reason = "build", f"the engine has no {reference}"
        if push:
            registry_digest = engine.registry_digest(reference)
            if registry_digest is not None:
                push_action, push_reason = "skip", f"the registry has it ({registry_digest})"
                if build == "build":
                    build, build_reason = "skip", "the registry has it; nothing to build"
            else:
                push_action, push_reason = "push", "the registry has no such tag"
    elif push:
        push_action, push_reason = "unknown", build_reason
    plan = BuildPlan(
        app=app,
        release=bundle.release_id,
        release_source=origin,
        repository=repository,
        tag=tag,
        base_image=base,
        python=version,
        dockerfile=dockerfile,
        labels=labels,
        build=build,
        build_reason=build_reason,
        push=push_action,
        push_reason=push_reason,
        local_image_id=local_id,
        registry_digest=registry_digest,
    )
    return plan, bundle, created


def build_release(
    repo: Repo,
    app: str,
    archive: Archive,
    *,
    env: str | None = None,
    release_ref: str | None = None,
    push: bool = False,
    dry_run: bool = False,
    base_image: str | None = None,
    python: str | None = None,
    on_line: OnLine | None = None,
    connect: EngineFactory = DockerEngine.connect,
    cache: Path | None = None,
    source: Path | None = None,
) -> BuildResult:
    """Plan, then (unless ``dry_run``) build, push and record the image of ``app``.

    ``source`` is the llmops source tree installed into the image (default: the one this
    llmops runs from); ``cache`` the wheel cache (default: ``cache_root()``).
    """
    started = time.perf_counter()
    check_options(
        repo, app, env=env, release_ref=release_ref, push=push, base_image=base_image, python=python
    )
    if release_ref is not None:
        _release(repo, app, archive, env, release_ref, dry_run=True)  # a bad --release: exit 2
    engine: DockerEngine | None
    try:
        engine = connect()
    except ExternalError:
        if not dry_run:
            raise
        engine = None
    try:
        plan, bundle, created = plan_build(
            repo,
            app,
            archive,
            env=env,
            release_ref=release_ref,
            push=push,
            base_image=base_image,
            python=python,
            engine=engine,
            dry_run=dry_run,
        )
        seconds = {"plan": time.perf_counter() - started}
        if dry_run or engine is None:
            return BuildResult(plan, True, release_created=created, seconds=seconds)
        return _execute(engine, plan, bundle, archive, created, seconds, on_line, cache, source)
    finally:
        if engine is not None:
            engine.close()


def _execute(
    engine: DockerEngine,
    plan: BuildPlan,
    bundle: Bundle,
    archive: Archive,
    created: bool,
    seconds: dict[str, float],
    on_line: OnLine | None,
    cache: Path | None,
    source: Path | None,
) -> BuildResult:
    reference = plan.reference
    image_id = plan.local_image_id
    steps = cached = 0
    if plan.build == "build":
        mark = time.perf_counter()
        root = source or source_tree(llmops.__file__)
        context = _context(plan, bundle, engine, cache or cache_root(), root, on_line)
        seconds["prepare"] = time.perf_counter() - mark
        mark = time.perf_counter()
        try:
            output = engine.build(context, reference, on_line=on_line)
        except BuildFailed as exc:
            raise _with_hint(exc, plan) from exc
        seconds["build"] = time.perf_counter() - mark
        image_id, steps, cached = output.image_id, output.steps, output.cached
    digest = plan.registry_digest
    if plan.push == "push":
        mark = time.perf_counter()
        digest = engine.push(plan.repository, plan.tag, on_line)
        seconds["push"] = time.perf_counter() - mark
    image = f"{plan.repository}@{digest}" if digest else reference
    entries = archive.entries()
    recorded = None
    if not _already_recorded(entries, plan, image, image_id):
        data: dict[str, Any] = {"image": image, "tag": reference}
        if image_id:
            data["imageId"] = image_id
        recorded = archive.append("built", plan.app, release=plan.release, data=data)
    return BuildResult(
        plan,
        False,
        built=plan.build == "build",
        pushed=plan.push == "push",
        image=image,
        image_id=image_id,
        digest=digest,
        steps=steps,
        cached_steps=cached,
        recorded=recorded,
        release_created=created,
        seconds=seconds,
    )


def _context(
    plan: BuildPlan,
    bundle: Bundle,
    engine: DockerEngine,
    cache: Path,
    root: Path,
    on_line: OnLine | None,
) -> bytes:
    files = _install_files(plan.python, engine.architecture(), cache, root, on_line)
    files["Dockerfile"] = plan.dockerfile.encode()
    files[BUNDLE_FILE] = bundle.data
    return make_context(files).data


def _install_files(
    python: str, arch: str, cache: Path, root: Path, on_line: OnLine | None
) -> dict[str, bytes | Path]:
    """The context files of layers 1–2 (app and controller images alike): the wheelhouse
    and the llmops wheel, prepared (or found in the cache) now."""
    wheel = ensure_llmops_wheel(root, cache)
    if wheel.built and on_line is not None:
        on_line(f"built the llmops wheel {wheel.path.name} (cached by content)")
    platforms = platform_tags(arch)
    if on_line is not None:
        on_line(f"wheelhouse for Python {python} ({platforms[0]}…)")
    house = ensure_wheelhouse(wheel.requirements(), python, platforms, cache)
    if house.prepared and on_line is not None:
        on_line(f"downloaded {len(house.files) - 1} wheels into {house.path}")
    files: dict[str, bytes | Path] = {f"{DIST_DIR}/{wheel.path.name}": wheel.path}
    for path in house.files:
        files[f"{WHEELS_DIR}/{path.name}"] = path
    assert f"{WHEELS_DIR}/{REQUIREMENTS_FILE}" in files
    return files


def _with_hint(exc: BuildFailed, plan: BuildPlan | ControllerPlan) -> BuildFailed:
    hint = ""
    if "FROM" in exc.step:
        hint = (
            f"hint: the base image {plan.base_image} must be in the engine or pullable; without "
            "pull access make one with scripts/make-base-image.sh and pass --base-image"
        )
    elif "pip install --no-index --find-links" in exc.step:
        hint = (
            f"hint: the wheels are for Python {plan.python}; --python must match the Python "
            f"of {plan.base_image}"
        )
    if not hint:
        return exc
    return BuildFailed(f"{exc.message}\n{hint}", exc.step, exc.tail)


# --- the controller image (``llmops build --controller``) --------------------------------

#: the repository name of the controller image, under the registry (or ``llmops``)
CONTROLLER_IMAGE = "llmops-controller"
#: the label carrying the hash in the controller image's tag
CONTROLLER_BUILD_LABEL = "llmops.dev/controller-build"


@dataclass(frozen=True, slots=True)
class ControllerPlan:
    """What ``llmops build --controller`` will do (or did)."""

    repository: str
    tag: str
    base_image: str
    python: str
    dockerfile: str
    labels: dict[str, str]
    build: BuildAction
    build_reason: str
    push: PushAction
    push_reason: str
    local_image_id: str | None = None
    registry_digest: str | None = None

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tag}"


@dataclass(frozen=True, slots=True)
class ControllerResult:
    """What ``llmops build --controller`` did. Nothing goes to the archive ledger: the
    controller image belongs to no app or release."""

    plan: ControllerPlan
    dry_run: bool
    built: bool = False
    pushed: bool = False
    #: ``<repo>@sha256:<manifest digest>`` when pushed, else ``<repo>:<tag>``
    image: str | None = None
    image_id: str | None = None
    digest: str | None = None
    steps: int = 0
    cached_steps: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def _has_tag(reference: str) -> bool:
    return ":" in reference.rsplit("/", 1)[-1]


def controller_repository(
    tag: str | None, environment: Environment | None
) -> tuple[str, str | None]:
    """The repository of the controller image and the tag ``--tag`` fixes (None: computed).

    ``--tag REPO[:TAG]`` wins; else ``<env spec.registry>/llmops-controller``; else
    ``llmops/llmops-controller``."""
    if tag is not None:
        try:
            check_base_image(tag)
        except UsageError:
            raise UsageError(
                f"--tag {tag!r} is not an image reference (e.g. 127.0.0.1:5000/llmops-controller)"
            ) from None
        if "@" in tag:
            raise UsageError(f"--tag {tag!r}: give REPOSITORY[:TAG], not a digest")
        if _has_tag(tag):
            repository, _, fixed = tag.rpartition(":")
            return repository, fixed
        return tag, None
    registry = (environment.spec.registry or "").rstrip("/") if environment is not None else ""
    return f"{registry or DEFAULT_REPOSITORY_PREFIX}/{CONTROLLER_IMAGE}", None


def controller_tag(wheel_key: str, wheelhouse: str, dockerfile: str) -> str:
    """``<llmops version>-<12 hex>``: the hash covers the llmops wheel, the wheelhouse and
    the Dockerfile (base image, Python), so any change to what goes in gives a new tag."""
    digest = hashlib.sha256(
        "\n".join(["controller-image/1", wheel_key, wheelhouse, dockerfile]).encode()
    ).hexdigest()
    version = llmops.__version__.replace("+", "_")
    return f"{version}-{digest[:12]}"


def build_controller(
    *,
    environment: Environment | None = None,
    tag: str | None = None,
    push: bool = False,
    dry_run: bool = False,
    base_image: str | None = None,
    python: str | None = None,
    on_line: OnLine | None = None,
    connect: EngineFactory = DockerEngine.connect,
    cache: Path | None = None,
    source: Path | None = None,
) -> ControllerResult:
    """Plan, then (unless ``dry_run``) build and push the controller image.

    The image installs the same wheelhouse and llmops wheel as app images (identical
    layers, shared cache), checks that the base image has ``git`` and runs
    ``llmops controller``. A dry run still builds the llmops wheel into the cache when it
    is missing: the tag is a hash of it.
    """
    started = time.perf_counter()
    base = check_base_image(base_image or DEFAULT_BASE_IMAGE)
    version = check_python(python or python_of(base) or DEFAULT_PYTHON)
    repository, fixed_tag = controller_repository(tag, environment)
    if push and registry_host(repository) == "docker.io":
        raise UsageError(
            f"--push: {repository} names no registry; push with --env ENV (its spec.registry) "
            "or --tag REGISTRY/REPOSITORY"
        )
    engine: DockerEngine | None
    try:
        engine = connect()
    except ExternalError:
        if not dry_run:
            raise
        engine = None
    try:
        arch = engine.architecture() if engine is not None else "x86_64"
        platforms = platform_tags(arch)
        root = source or source_tree(llmops.__file__)
        wheel = ensure_llmops_wheel(root, cache or cache_root())
        house_key = wheelhouse_key(wheel.requirements(), version, platforms)
        spec = ControllerDockerfileSpec(base, version, f"{platforms[0]}…")
        computed = controller_tag(wheel.key, house_key, render_controller_dockerfile(spec))
        labels = {
            MANAGED_BY_LABEL: MANAGED_BY,
            CONTROLLER_BUILD_LABEL: computed,
            "org.opencontainers.image.title": CONTROLLER_IMAGE,
            "org.opencontainers.image.version": llmops.__version__,
        }
        spec = ControllerDockerfileSpec(base, version, f"{platforms[0]}…", tuple(labels.items()))
        plan = _controller_plan(
            engine, repository, fixed_tag or computed, base, version, labels, spec, push
        )
        seconds = {"plan": time.perf_counter() - started}
        if dry_run or engine is None:
            return ControllerResult(plan, True, seconds=seconds)
        return _execute_controller(engine, plan, seconds, on_line, cache, root)
    finally:
        if engine is not None:
            engine.close()


def _controller_plan(
    engine: DockerEngine | None,
    repository: str,
    tag: str,
    base: str,
    version: str,
    labels: dict[str, str],
    spec: ControllerDockerfileSpec,
    push: bool,
) -> ControllerPlan:
    reference = f"{repository}:{tag}"
    build: BuildAction = "unknown"
    build_reason = "the Docker Engine could not be reached"
    push_action: PushAction = "none"
    push_reason = "not asked (--push)"
    local_id: str | None = None
    registry_digest: str | None = None
    if engine is not None:
        local = engine.image(reference)
        wanted = labels[CONTROLLER_BUILD_LABEL]
        if local is not None and local.labels.get(CONTROLLER_BUILD_LABEL) == wanted:
            build, build_reason, local_id = "skip", f"the engine has {reference}", local.id
        else:
            build, build_reason = "build", f"the engine has no {reference} of this build"
        if push:
            registry_digest = engine.registry_digest(reference)
            if registry_digest is not None:
                push_action, push_reason = "skip", f"the registry has it ({registry_digest})"
                if build == "build":
                    build, build_reason = "skip", "the registry has it; nothing to build"
            else:
                push_action, push_reason = "push", "the registry has no such tag"
    elif push:
        push_action, push_reason = "unknown", build_reason
    return ControllerPlan(
        repository=repository,
        tag=tag,
        base_image=base,
        python=version,
        dockerfile=render_controller_dockerfile(spec),
        labels=labels,
        build=build,
        build_reason=build_reason,
        push=push_action,
        push_reason=push_reason,
        local_image_id=local_id,
        registry_digest=registry_digest,
    )


def _execute_controller(
    engine: DockerEngine,
    plan: ControllerPlan,
    seconds: dict[str, float],
    on_line: OnLine | None,
    cache: Path | None,
    root: Path,
) -> ControllerResult:
    image_id = plan.local_image_id
    steps = cached = 0
    if plan.build == "build":
        mark = time.perf_counter()
        files = _install_files(
            plan.python, engine.architecture(), cache or cache_root(), root, on_line
        )
        files["Dockerfile"] = plan.dockerfile.encode()
        context = make_context(files).data
        seconds["prepare"] = time.perf_counter() - mark
        mark = time.perf_counter()
        try:
            output = engine.build(context, plan.reference, on_line=on_line)
        except BuildFailed as exc:
            raise _controller_hint(exc, plan) from exc
        seconds["build"] = time.perf_counter() - mark
        image_id, steps, cached = output.image_id, output.steps, output.cached
    digest = plan.registry_digest
    if plan.push == "push":
        mark = time.perf_counter()
        digest = engine.push(plan.repository, plan.tag, on_line)
        seconds["push"] = time.perf_counter() - mark
    return ControllerResult(
        plan,
        False,
        built=plan.build == "build",
        pushed=plan.push == "push",
        image=f"{plan.repository}@{digest}" if digest else plan.reference,
        image_id=image_id,
        digest=digest,
        steps=steps,
        cached_steps=cached,
        seconds=seconds,
    )


def _controller_hint(exc: BuildFailed, plan: ControllerPlan) -> BuildFailed:
    if "command -v git" in exc.step:
        hint = f"hint: {git_missing_message(plan.base_image)}"
        return BuildFailed(f"{exc.message}\n{hint}", exc.step, exc.tail)
    return _with_hint(exc, plan)
