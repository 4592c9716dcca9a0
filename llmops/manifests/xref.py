"""Cross-file checks: environments and pipelines against the apps and suites that exist,
and a scan for secrets pasted into any manifest.

Called by ``llmops.manifests.repository`` after every file has been loaded.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from llmops.domain.ids import release_app
from llmops.domain.models import Environment, Pipeline
from llmops.domain.repo import AppSource
from llmops.manifests.loader import Context, Parsed
from llmops.manifests.messages import dotted

#: Shapes of well-known credentials; a match anywhere in a manifest is an error.
SECRET_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"\bsk-(proj-|ant-)?[A-Za-z0-9_-]{20,}"),
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"),
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{40,}"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    re.compile(r"\bxox[abpr]-[A-Za-z0-9-]{10,}"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
)
_ANY_SECRET = re.compile("|".join(f"(?:{p.pattern})" for p in SECRET_PATTERNS))
#: Literal text every pattern above needs: a cheap test before the regular expression.
_SECRET_PARTS = (
    "sk-", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "AKIA", "xox", "-----BEGIN ",
)  # fmt: skip
_SECRETISH_ENV = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)S?$", re.I)


def _hint(name: str, options: list[str]) -> str:
    from difflib import get_close_matches
    close = get_close_matches(name, options, n=1)
    return f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(sorted(options)) or 'none'})"


def check_environment(
    ctx: Context, parsed: Parsed[Environment], apps: dict[str, AppSource], app_names: set[str]
) -> None:
    env = parsed.model
    assert env is not None and parsed.doc is not None
    stem = parsed.path.stem
    if env.metadata.name != stem:
        ctx.report(
            parsed.file,
            parsed.doc.mark_for(("metadata", "name")),
            "metadata.name",
            f"name {env.metadata.name!r} must match the file name {stem!r}; rename one of them",
        )
    names = sorted(app_names)
    for section in ("overrides", "releases"):
        for app in getattr(env.spec, section):
            if app not in app_names:
                where = ("spec", section, app)
                ctx.report(
                    parsed.file,
                    parsed.doc.mark_for(where, key=True),
                    where,
                    f"no app named {app!r}{_hint(app, names)}",
                )
    for app, release in env.spec.releases.items():
        if release_app(release) != app:
            where = ("spec", "releases", app)
            ctx.report(
                parsed.file,
                parsed.doc.mark_for(where),
                where,
                f"pin for {app!r} names a release of {release_app(release)!r}; "
                f"use a release id of {app!r} from `llmops release list {app}`",
            )
    for app, override in env.spec.overrides.items():
        _check_plain_env(ctx, parsed, ("spec", "overrides", app, "env"), override.env)


def check_pipelines(
    ctx: Context,
    pipelines: list[Parsed[Pipeline]],
    environments: set[str],
    suites: dict[str, set[str]] | None,
    *,
    every_pipeline_loaded: bool = True,
) -> None:
    """Check stages against environments and, when every app loaded (``suites`` is not
    None), gate suites and required cases against the suites that exist. Environments
    in no pipeline are reported only when every pipeline loaded."""
    owner: dict[str, str] = {}
    for parsed in pipelines:
        pipeline = parsed.model
        assert pipeline is not None and parsed.doc is not None
        for index, stage in enumerate(pipeline.spec.stages):
            base: tuple[str | int, ...] = ("spec", "stages", index)
            if stage.env not in environments:
                ctx.report(
                    parsed.file,
                    parsed.doc.mark_for((*base, "env")),
                    (*base, "env"),
                    f"no environment named {stage.env!r}{_hint(stage.env, sorted(environments))}",
                )
            elif stage.env in owner:
                ctx.report(
                    parsed.file,
                    parsed.doc.mark_for((*base, "env")),
                    (*base, "env"),
                    f"environment {stage.env!r} is already a stage of pipeline {owner[stage.env]!r}",
                )
            else:
                owner[stage.env] = pipeline.metadata.name
            if suites is None:
                continue
            for part in ("gate", "verify"):
                block = getattr(stage, part)
                if block is None:
                    continue
                for j, name in enumerate(block.suites):
                    if name not in suites:
                        where = (*base, part, "suites", j)
                        ctx.report(
                            parsed.file,
                            parsed.doc.mark_for(where),
                            where,
                            f"no app has a suite named {name!r}{_hint(name, sorted(suites))}",
                        )
            for j, ref in enumerate(stage.gate.required_cases):
                where = (*base, "gate", "requiredCases", j)
                suite, _, case = ref.partition("/")
                if not case or suite not in suites or case not in suites[suite]:
                    ctx.report(
                        parsed.file,
                        parsed.doc.mark_for(where),
                        where,
                        f"{ref!r} names no case; use '<suite>/<case id>' of an existing suite",
                    )
        if pipeline.spec.stages[0].source is None:
            where = ("spec", "stages", 0)
            ctx.report(
                parsed.file,
                parsed.doc.mark_for(where),
                (*where, "source"),
                "the first stage takes source: head (it deploys the branch's HEAD); "
                "add source: head",
                "warning",
            )
    for env in sorted(environments - set(owner) if every_pipeline_loaded else ()):
        ctx.report(
            f"environments/{env}.yaml" if not ctx.prefix else f"{ctx.prefix}/environments/{env}.yaml",
            None,
            "",
            f"environment {env!r} is in no pipeline; nothing will be promoted into it",
            "warning",
        )


def check_app_env(ctx: Context, parsed: Parsed[Any]) -> None:
    """Plain env vars of an app must not carry secrets."""
    model = parsed.model
    if model is None or getattr(model, "kind", None) != "LLMApp":
        return
    _check_plain_env(ctx, parsed, ("spec", "serving", "env"), model.spec.serving.env)


def _check_plain_env(
    ctx: Context, parsed: Parsed[Any], base: tuple[str | int, ...], env: dict[str, str]
) -> None:
    assert parsed.doc is not None
    for name in env:
        if _SECRETISH_ENV.search(name):
            where = (*base, name)
            ctx.report(
                parsed.file,
                parsed.doc.mark_for(where, key=True),
                where,
                f"{name!r} looks like a secret; plain env values are stored in git and the "
                "release, so reference secrets with model.apiKey ({env|file|secret}) instead",
            )


def scan_secrets(ctx: Context, parsed: Parsed[Any]) -> None:
    """Report any value shaped like a known credential; the value is never echoed."""
    if parsed.doc is None:
        return
    # One look over every string (NUL-separated: no pattern matches across a NUL) rules
    # out nearly every file at once; only a hit needs the walk with paths.
    text = "\x00".join(_values(parsed.doc.data))
    if not any(part in text for part in _SECRET_PARTS) or not _ANY_SECRET.search(text):
        return
    reported = {(d.file, d.path) for d in ctx.diagnostics}
    for path, value in _strings(parsed.doc.data, ()):
        if (parsed.file, dotted(path)) in reported:
            continue
        if _ANY_SECRET.search(value):
            ctx.report(
                parsed.file,
                parsed.doc.mark_for(path),
                path,
                "looks like a credential (value not shown); never commit secrets: remove it, "
                "rotate it, and reference it with {env: NAME} or {file: PATH}",
            )


def _values(data: Any) -> list[str]:
    """Every string value in ``data`` (not the keys), in no particular order."""
    found: list[str] = []
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            found.append(node)
        elif isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _strings(node: Any, path: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, (*path, index))
