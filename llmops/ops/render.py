"""The ``llmops render`` use case: the Kubernetes objects of one app in one environment.

Called by ``llmops.cli.render``. Reads the repository and the archive, writes nothing.
The release is the one asked for, else the environment's pin, else the work tree's; the
image is the digest the build recorded, else the release's tag reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops.archive.base import Archive
from llmops.deploy.desired import desired_app
from llmops.deploy.images import built_image, image_ref, image_repository
from llmops.deploy.k8s import render_app
from llmops.domain.deploy import Colour, DesiredApp
from llmops.domain.errors import UsageError
from llmops.domain.repo import Repo
from llmops.ops.release import archive_for, resolve, work_bundle

#: the namespace rendered for environments whose target is not Kubernetes
FALLBACK_NAMESPACE = "default"


@dataclass(frozen=True, slots=True)
class Rendered:
    """What ``render`` produced: the objects, what they were made from, and notes for people."""

    desired: DesiredApp
    namespace: str
    colour: Colour
    objects: tuple[dict[str, Any], ...]
    #: where the release and image came from when not the obvious place (stderr lines)
    notes: tuple[str, ...] = ()


def render(
    repo: Repo,
    app: str,
    env: str,
    *,
    release: str | None = None,
    colour: Colour = "blue",
    archive: Path | None = None,
) -> Rendered:
    """The objects of ``app`` in ``env`` with ``colour`` active.

    ``release`` is an id, a unique digest prefix or ``APP@work``; default: the pin of
    ``app`` in ``env``, else the work tree (with a note). Raises ``UsageError`` for an
    unknown app, environment or release.
    """
    source = repo.environments.get(env)
    if source is None:
        known = ", ".join(sorted(repo.environments)) or "none"
        raise UsageError(f"no environment named {env!r} (environments: {known})")
    environment = source.environment
    pins = environment.spec.releases
    if app not in repo.apps and app not in pins:
        known = ", ".join(sorted(set(repo.apps) | set(pins))) or "none"
        raise UsageError(f"no app named {app!r} (apps: {known})")
    store: Archive = archive_for(repo, archive)
    notes: list[str] = []
    if release is not None:
        bundle = resolve(repo, store, release)
        if bundle.app != app:
            raise UsageError(f"release {bundle.release_id} is of app {bundle.app!r}, not {app!r}")
    elif app in pins:
        bundle = resolve(repo, store, pins[app])
    else:
        bundle = work_bundle(repo, app)
        notes.append(f"not pinned in {env}; rendering the work tree's release {bundle.release_id}")

    repository = image_repository(environment, app)
    entries = store.entries()
    image = built_image(entries, bundle.release_id, repository)
    if image is None:
        image = image_ref(environment, bundle.release_id)
        tagged = any(
            e.event == "built" and e.release == bundle.release_id and e.data.get("tag") == image
            for e in entries
        )
        if tagged:
            notes.append(f"image built but not pushed (no registry digest); using the tag {image}")
        else:
            notes.append(f"image not built yet; using the tag reference {image}")

    target = environment.spec.target
    if target.kind == "kubernetes" and target.namespace:
        namespace = target.namespace
    else:
        namespace = FALLBACK_NAMESPACE
        notes.append(
            f"{env} deploys to {target.kind}, not Kubernetes; rendering anyway with namespace "
            f"{FALLBACK_NAMESPACE}"
        )
    desired = desired_app(bundle, environment, image)
    objects = render_app(desired, namespace, colour)
    return Rendered(desired, namespace, colour, tuple(objects), tuple(notes))
