"""Image names of releases: repository, tag, and the digest the build recorded. Pure.

Build once, promote many: a release's image is tagged by the release digest
(``<repository>:<64 hex>``) and deployed by its image digest
(``<repository>@sha256:<image digest>``). The repository is
``<spec.registry>/<app>`` when the environment names a registry, else ``llmops/<app>``.

The build records each image it built in the archive ledger as event ``built`` with
``data = {"image": "<repo>@sha256:<image digest>", "tag": "<repo>:<tag>", "imageId": …}``;
:func:`built_image` finds it again. Used by ``llmops.build``, ``llmops.ops`` (render,
plan, apply) and the deploy targets.
"""

from __future__ import annotations

from collections.abc import Sequence

from llmops.domain.archive import LedgerEntry
from llmops.domain.errors import InvalidInput
from llmops.domain.ids import RELEASE_ID_RE, release_id_problem
from llmops.domain.models.environment import Environment

#: the repository prefix when an environment names no registry
DEFAULT_REPOSITORY_PREFIX = "llmops"


def image_repository(environment: Environment, app: str) -> str:
    """``<registry>/<app>`` when ``environment`` names a registry, else ``llmops/<app>``."""
    registry = (environment.spec.registry or "").rstrip("/")
    return f"{registry or DEFAULT_REPOSITORY_PREFIX}/{app}"


def image_tag(release_id: str) -> str:
    """The tag of a release's image: its 64-hex release digest."""
    match = RELEASE_ID_RE.match(release_id)
    if match is None:
        raise InvalidInput(release_id_problem(release_id) or f"{release_id!r} is not a release id")
    return match.group("digest")


def image_ref(environment: Environment, release: str) -> str:
    """The tag reference ``<repository>:<release digest>`` of ``release`` in ``environment``."""
    tag = image_tag(release)
    return f"{image_repository(environment, release.split('@', 1)[0])}:{tag}"


def built_image(entries: Sequence[LedgerEntry], release: str, repository: str) -> str | None:
    """The newest ``<repository>@sha256:…`` the build recorded for ``release``, or None."""
    prefix = f"{repository}@sha256:"
    for entry in reversed(entries):
        if entry.event != "built" or entry.release != release:
            continue
        image = entry.data.get("image")
        if isinstance(image, str) and image.startswith(prefix) and len(image) > len(prefix):
            return image
    return None
