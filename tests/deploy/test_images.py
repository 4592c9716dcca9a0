"""Image names: repository per environment, tag = release digest, the recorded digest."""

from __future__ import annotations

import pytest
from deploy_support import environment_of

from llmops.deploy.images import built_image, image_ref, image_repository, image_tag
from llmops.domain.archive import LedgerEntry
from llmops.domain.errors import InvalidInput

DIGEST = "4f1c" + "0" * 60
RELEASE = f"support-bot@sha256:{DIGEST}"


def built(seq: int, release: str, image: str, event: str = "built") -> LedgerEntry:
    return LedgerEntry(
        seq=seq,
        prev="0" * 64,
        time="2025-01-01T00:00:00Z",
        actor="ci",
        event=event,  # type: ignore[arg-type]
        app=release.split("@")[0],
        release=release,
        data={
            "image": image,
            "tag": image.split("@")[0] + ":" + DIGEST,
            "imageId": "sha256:" + "9" * 64,
        },
    )


def test_repository_with_and_without_registry() -> None:
    assert image_repository(environment_of(), "support-bot") == "llmops/support-bot"
    env = environment_of(registry="127.0.0.1:5000/llm-apps/")
    assert image_repository(env, "support-bot") == "127.0.0.1:5000/llm-apps/support-bot"


def test_tag_is_the_release_digest() -> None:
    assert image_tag(RELEASE) == DIGEST
    env = environment_of(registry="127.0.0.1:5000/llm-apps")
    assert image_ref(env, RELEASE) == f"127.0.0.1:5000/llm-apps/support-bot:{DIGEST}"


@pytest.mark.parametrize(
    "bad", ["support-bot", "support-bot@sha256:abc", "Support@sha256:" + "0" * 64]
)
def test_tag_of_a_non_release_is_invalid_input(bad: str) -> None:
    with pytest.raises(InvalidInput):
        image_tag(bad)


def test_built_image_is_the_newest_for_release_and_repository() -> None:
    repo = "127.0.0.1:5000/llm-apps/support-bot"
    other_release = "support-bot@sha256:" + "1" * 64
    entries = [
        built(0, RELEASE, f"{repo}@sha256:" + "a" * 64),
        built(1, RELEASE, f"{repo}@sha256:" + "b" * 64),
        built(2, RELEASE, "llmops/support-bot@sha256:" + "c" * 64),
        built(3, other_release, f"{repo}@sha256:" + "d" * 64),
        built(4, RELEASE, f"{repo}@sha256:" + "e" * 64, event="deployed"),
    ]
    assert built_image(entries, RELEASE, repo) == f"{repo}@sha256:" + "b" * 64
    assert (
        built_image(entries, RELEASE, "llmops/support-bot")
        == "llmops/support-bot@sha256:" + "c" * 64
    )
    assert built_image(entries, other_release, "llmops/support-bot") is None
    # a repository that merely starts like another one does not match
    assert built_image(entries, RELEASE, "127.0.0.1:5000/llm-apps/support") is None
    assert built_image([], RELEASE, repo) is None
