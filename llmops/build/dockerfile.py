"""The Dockerfile and labels of a release image. Pure: values in, text out.

Called by ``llmops.ops.build``. Layers are ordered for the build cache, least changing
first, so a prompt-only change rebuilds one small layer:

1. the base image (``python:3.12-slim`` by default; any image with ``python3 -m venv``);
2. the dependency wheelhouse, installed into ``/opt/llmops`` with no network
   (``pip --no-index``): changes only with llmops's requirements or the target Python;
3. the llmops wheel (``--no-deps``): changes only with llmops itself;
4. the runtime settings (user 10001, port, entrypoint): change only with the port;
5. the release bundle at ``/srv/llmops/release.json``: the only layer a release changes.

The controller image (``llmops build --controller``) shares layers 1–3 (the same text,
so the same cache), then checks that the base image has ``git``, and runs
``llmops controller`` as user 10001 with ``HOME=/var/lib/llmops``; it has no bundle.

The labels (OCI ``source``/``revision``, ``llmops.dev/release``) are one ``LABEL``
instruction after the bundle (one step, not one per label) and carry no build timestamp,
so identical inputs give an identical image.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from llmops.domain.deploy import (
    APP_LABEL,
    BUNDLE_PATH_IN_IMAGE,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    RELEASE_ANNOTATION,
)
from llmops.domain.errors import UsageError

DEFAULT_BASE_IMAGE = "python:3.12-slim"
#: where the virtual environment with llmops lives in the image
VENV = "/opt/llmops"
#: the unprivileged user the image runs as (no passwd entry needed)
RUN_AS_USER = "10001:10001"
#: paths in the build context
WHEELS_DIR = "wheels"
DIST_DIR = "dist"
REQUIREMENTS_FILE = "requirements.txt"
BUNDLE_FILE = "release.json"

# docker's reference grammar, simplified: [host[:port]/]path[:tag][@digest]
_IMAGE_RE = re.compile(
    r"^(?:(?:localhost|[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)+|[a-zA-Z0-9-]+(?=:))(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:[._-]+[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)
_PYTHON_RE = re.compile(r"^3\.(\d{1,2})$")
_PYTHON_IN_TAG_RE = re.compile(r"python[^:/]*:(3\.\d{1,2})(?:$|[^0-9])")

#: the layers every llmops image starts with (app and controller images alike), so the
#: wheelhouse and llmops layers of one build are cache hits in the other
COMMON = """\
FROM {base_image}
ENV PATH={venv}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \\
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore

# 1. dependencies: a wheelhouse prepared on the host for Python {python} ({platform})
COPY {wheels}/ /wheels/
RUN python3 -m venv {venv} && {venv}/bin/pip install --no-index --find-links /wheels -r /wheels/{requirements}

# 2. llmops itself
COPY {dist}/ /dist/
RUN {venv}/bin/pip install --no-index --no-deps /dist/*.whl
"""

TEMPLATE = (
    "# Rendered by `llmops build`; layers go from least to most often changed.\n"
    + COMMON
    + """
# 3. how it runs: unprivileged, read-only friendly (only /tmp is written)
WORKDIR {bundle_dir}
USER {user}
EXPOSE {port}
ENTRYPOINT ["{venv}/bin/llmops"]
CMD {cmd}

# 4. the release: the only layer a new release changes
COPY {bundle_file} {bundle_path}
{label}"""
)

#: the controller clones its repository here (HOME too); the manifests mount an emptyDir
CONTROLLER_HOME = "/var/lib/llmops"
CONTROLLER_PORT = 8080

CONTROLLER_TEMPLATE = (
    "# Rendered by `llmops build --controller`; the first layers are those of app images.\n"
    + COMMON
    + """
# 3. the controller clones its repository with git: the base image must have it
RUN command -v git >/dev/null || {{ echo {git_missing} >&2; exit 1; }}

# 4. how it runs: unprivileged, read-only root filesystem; writes only /tmp and {home}
#    (emptyDir volumes in `llmops controller manifests`)
RUN python3 -c "import os; os.makedirs('{home}', exist_ok=True); os.chown('{home}', {uid}, {uid})"
ENV HOME={home}
WORKDIR {home}
USER {user}
EXPOSE {port}
ENTRYPOINT ["llmops", "controller"]
{label}"""
)


#: what the controller image's git check prints when the base image has no git
GIT_MISSING = (
    "llmops controller: the base image has no git; use one with git "
    "(EXTRA_PACKAGES='git ca-certificates' scripts/make-base-image.sh TAG)"
)


def git_missing_message(base_image: str) -> str:
    """The hint ``llmops build --controller`` adds when the git check fails."""
    return (
        f"the base image {base_image} has no git (the controller clones its repository "
        "with it): make one with EXTRA_PACKAGES='git ca-certificates' scripts/make-base-image.sh TAG and "
        "pass --base-image TAG"
    )


@dataclass(frozen=True, slots=True)
class DockerfileSpec:
    """What the Dockerfile of one app's image depends on (not the release itself)."""

    app: str
    port: int
    base_image: str = DEFAULT_BASE_IMAGE
    python: str = "3.12"
    platform: str = "linux/amd64"
    #: image labels, written as one LABEL instruction at the end
    labels: tuple[tuple[str, str], ...] = ()


def check_base_image(value: str) -> str:
    """``value`` if it is an image reference; ``UsageError`` otherwise."""
    if not _IMAGE_RE.match(value):
        raise UsageError(
            f"--base-image {value!r} is not an image reference (e.g. python:3.12-slim)"
        )
    return value


def check_python(value: str) -> str:
    """``value`` if it is a Python version like ``3.12``; ``UsageError`` otherwise."""
    match = _PYTHON_RE.match(value)
    if match is None or int(match.group(1)) < 11:
        raise UsageError(f"--python {value!r}: give a version like 3.12 (3.11 or later)")
    return value


def python_of(base_image: str) -> str | None:
    """The Python version a base image's tag names (``python:3.12-slim`` → ``3.12``)."""
    match = _PYTHON_IN_TAG_RE.search(base_image)
    return match.group(1) if match else None


def serve_command(app: str, port: int) -> list[str]:
    """The image's CMD: serve the bundled release on every interface."""
    return [
        "serve",
        app,
        "--bundle",
        BUNDLE_PATH_IN_IMAGE,
        "--host",
        "0.0.0.0",
        "--port",
        str(port),
    ]


def render_dockerfile(spec: DockerfileSpec) -> str:
    """The Dockerfile text of ``spec``; the same spec always gives the same text."""
    check_base_image(spec.base_image)
    check_python(spec.python)
    bundle_dir = BUNDLE_PATH_IN_IMAGE.rsplit("/", 1)[0]
    return TEMPLATE.format(
        base_image=spec.base_image,
        python=spec.python,
        platform=spec.platform,
        venv=VENV,
        wheels=WHEELS_DIR,
        requirements=REQUIREMENTS_FILE,
        dist=DIST_DIR,
        bundle_dir=bundle_dir,
        user=RUN_AS_USER,
        port=spec.port,
        cmd=json.dumps(serve_command(spec.app, spec.port)),
        bundle_file=BUNDLE_FILE,
        bundle_path=BUNDLE_PATH_IN_IMAGE,
        label=_label_instruction(spec.labels),
    )


@dataclass(frozen=True, slots=True)
class ControllerDockerfileSpec:
    """What the Dockerfile of the controller image depends on."""

    base_image: str = DEFAULT_BASE_IMAGE
    python: str = "3.12"
    platform: str = "linux/amd64"
    labels: tuple[tuple[str, str], ...] = ()


def render_controller_dockerfile(spec: ControllerDockerfileSpec) -> str:
    """The Dockerfile of the controller image: the app images' base, wheelhouse and llmops
    layers (the same text, so they share the build cache), then a check that the base
    image has git, then the controller's runtime settings. No release bundle."""
    check_base_image(spec.base_image)
    check_python(spec.python)
    return CONTROLLER_TEMPLATE.format(
        base_image=spec.base_image,
        python=spec.python,
        platform=spec.platform,
        venv=VENV,
        wheels=WHEELS_DIR,
        requirements=REQUIREMENTS_FILE,
        dist=DIST_DIR,
        git_missing=_shell_quote(GIT_MISSING),
        home=CONTROLLER_HOME,
        uid=RUN_AS_USER.split(":")[0],
        user=RUN_AS_USER,
        port=CONTROLLER_PORT,
        label=_label_instruction(spec.labels),
    )


def _shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    escaped = escaped.replace("\n", " ")
    return f'"{escaped}"'


def _label_instruction(labels: tuple[tuple[str, str], ...]) -> str:
    if not labels:
        return ""
    pairs = " \\\n      ".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(labels))
    return f"LABEL {pairs}\n"


def image_labels(
    app: str,
    release_id: str,
    *,
    source: str | None = None,
    revision: str | None = None,
    created: str | None = None,
) -> dict[str, str]:
    """The labels of a release image. ``created`` should be the commit time (or None):
    a build timestamp would make every build a different image."""
    labels = {
        MANAGED_BY_LABEL: MANAGED_BY,
        APP_LABEL: app,
        RELEASE_ANNOTATION: release_id,
        "org.opencontainers.image.title": app,
    }
    if source:
        labels["org.opencontainers.image.source"] = source
    if revision:
        labels["org.opencontainers.image.revision"] = revision
    if created:
        labels["org.opencontainers.image.created"] = created
    return labels
