"""The Dockerfile of a release image: cache-friendly layer order, the runtime contract,
labels without timestamps, and checked options."""

from __future__ import annotations

import json

import pytest

from llmops.build.dockerfile import (
    DockerfileSpec,
    check_base_image,
    check_python,
    image_labels,
    python_of,
    render_dockerfile,
    serve_command,
)
from llmops.domain.deploy import BUNDLE_PATH_IN_IMAGE, RELEASE_ANNOTATION
from llmops.domain.errors import UsageError

RELEASE = "summarizer@sha256:" + "ab" * 32


def logical_lines(text: str) -> list[str]:
    """Instructions with their continuation lines joined; comments left out."""
    joined = text.replace("\\\n", " ")
    return [line for line in joined.splitlines() if line and not line.startswith("#")]


def instructions(text: str) -> list[str]:
    return [line.split()[0] for line in logical_lines(text)]


def test_layers_go_from_least_to_most_often_changed() -> None:
    text = render_dockerfile(DockerfileSpec("summarizer", 8080, "python:3.12-slim", "3.12"))
    assert instructions(text) == [
        "FROM", "ENV",
        "COPY", "RUN",  # the dependency wheelhouse
        "COPY", "RUN",  # llmops
        "WORKDIR", "USER", "EXPOSE", "ENTRYPOINT", "CMD",
        "COPY",  # the release bundle: last
    ]  # fmt: skip
    lines = text.splitlines()
    assert lines[1] == "FROM python:3.12-slim"
    assert lines[-1] == f"COPY release.json {BUNDLE_PATH_IN_IMAGE}"
    assert "pip install --no-index --find-links /wheels -r /wheels/requirements.txt" in text
    assert "USER 10001:10001" in lines


def test_the_command_serves_the_bundle_on_every_interface() -> None:
    text = render_dockerfile(DockerfileSpec("support-bot", 9090))
    cmd = next(line for line in text.splitlines() if line.startswith("CMD "))
    assert json.loads(cmd[4:]) == serve_command("support-bot", 9090) == [
        "serve", "support-bot", "--bundle", BUNDLE_PATH_IN_IMAGE,
        "--host", "0.0.0.0", "--port", "9090",
    ]  # fmt: skip
    assert "EXPOSE 9090" in text


def test_the_same_spec_gives_the_same_text_and_the_release_only_touches_the_end() -> None:
    spec = DockerfileSpec("summarizer", 8080, labels=tuple(image_labels("summarizer", RELEASE).items()))
    other = DockerfileSpec(
        "summarizer", 8080, labels=tuple(image_labels("summarizer", RELEASE.replace("ab", "cd")).items())
    )
    one, two = render_dockerfile(spec), render_dockerfile(other)
    assert one == render_dockerfile(spec)
    lines_one, lines_two = logical_lines(one), logical_lines(two)
    pairs = list(zip(lines_one, lines_two, strict=True))
    first_difference = next(i for i, (a, b) in enumerate(pairs) if a != b)
    assert first_difference == len(lines_one) - 1  # only the last instruction differs
    assert lines_one[-1].startswith("LABEL") and lines_one[-2].startswith("COPY release.json")


def test_labels_name_the_release_and_carry_no_build_time() -> None:
    labels = image_labels("summarizer", RELEASE, source="https://git.example/acme/llm", revision="c0ffee")
    assert labels[RELEASE_ANNOTATION] == RELEASE
    assert labels["org.opencontainers.image.source"] == "https://git.example/acme/llm"
    assert labels["org.opencontainers.image.revision"] == "c0ffee"
    assert "org.opencontainers.image.created" not in labels
    assert "org.opencontainers.image.revision" not in image_labels("summarizer", RELEASE)


def test_label_values_are_quoted_against_substitution() -> None:
    spec = DockerfileSpec("a", 8080, labels=(("note", 'say "hi" $HOME \\ now'),))
    label = render_dockerfile(spec).splitlines()[-1]
    assert label == 'LABEL "note"="say \\"hi\\" \\$HOME \\\\ now"'


@pytest.mark.parametrize(
    ("image", "python"),
    [
        ("python:3.12-slim", "3.12"),
        ("python:3.11-slim-bookworm", "3.11"),
        ("llmops-test/python:3.11-bookworm", "3.11"),
        ("127.0.0.1:5000/base/python:3.13", "3.13"),
        ("debian:bookworm", None),
        ("python:latest", None),
    ],
)
def test_the_python_version_is_read_from_the_base_image_tag(image: str, python: str | None) -> None:
    assert python_of(image) == python


@pytest.mark.parametrize("value", ["", "UPPER/case", "python:3.12 slim", "a;rm -rf /", "x\nRUN y"])
def test_bad_base_images_are_usage_errors(value: str) -> None:
    with pytest.raises(UsageError, match="is not an image reference"):
        check_base_image(value)


@pytest.mark.parametrize("value", ["3", "2.7", "3.10", "3.x", "3.12.1", "py3.12"])
def test_bad_python_versions_are_usage_errors(value: str) -> None:
    with pytest.raises(UsageError, match=r"give a version like 3\.12"):
        check_python(value)


def test_good_values_pass() -> None:
    assert check_python("3.11") == "3.11" and check_python("3.13") == "3.13"
    for image in (
        "python:3.12-slim",
        "localhost:5000/a/b:c",
        "127.0.0.1:5000/llm-apps/python:3.11",
        "registry.example.com/team/python:3.12-slim",
        "python@sha256:" + "0" * 64,
    ):
        assert check_base_image(image) == image
