"""Building a LoadedApp: model overrides (environment, --model-url), API keys kept out of
reprs, the output schema, the canary, and clear errors for unknown names."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from gateway_kit import API_KEY

from llmops import api
from llmops.domain.errors import UsageError
from llmops.runtime.canary import canary_token
from llmops.runtime.loaded import LoadedApp, load_app


def test_the_apps_own_model_settings(load: Callable[..., LoadedApp]) -> None:
    loaded = load()
    assert (loaded.name, loaded.release, loaded.environment) == ("demo", "dev", "local")
    assert loaded.model.name == "stub" and loaded.model.base_url == "http://127.0.0.1:9/v1"
    assert loaded.model.api_key == API_KEY and loaded.model.api_key_problem is None
    assert loaded.model.max_retries == 0 and loaded.model.timeout_seconds == 2
    assert loaded.canary == canary_token("dev")
    assert API_KEY not in repr(loaded)
    assert loaded.watch[0] == loaded.app_dir


def test_environment_overrides_and_model_url(
    load: Callable[..., LoadedApp], repo_dir: Path
) -> None:
    loaded = load(environment="dev", environ={"DEV_API_KEY": "sk-dev-key-123456789"})
    assert loaded.environment == "dev"
    assert loaded.model.name == "stub-dev"
    assert loaded.model.api_key == "sk-dev-key-123456789"
    assert loaded.watch[-1] == repo_dir.resolve() / "environments" / "dev.yaml"
    url = load(environment="dev", model_url="http://127.0.0.1:1234/v1", environ={})
    assert url.model.base_url == "http://127.0.0.1:1234/v1"


def test_a_missing_key_is_reported_not_fatal(load: Callable[..., LoadedApp]) -> None:
    loaded = load(environ={})
    assert loaded.model.api_key is None
    assert "DEMO_API_KEY is not set" in (loaded.model.api_key_problem or "")


def test_the_output_schema_is_loaded_and_compiled(load: Callable[..., LoadedApp]) -> None:
    loaded = load("jsonbot")
    assert loaded.output_schema is not None and loaded.output_schema["required"] == ["answer"]
    assert loaded.output.validator is not None and loaded.output.repair_retries == 1
    assert load().output.validator is None


def test_unknown_app_and_environment(repo_dir: Path) -> None:
    repo = api.load(repo_dir)
    with pytest.raises(UsageError, match="did you mean 'demo'"):
        load_app(repo, "dmeo")
    with pytest.raises(UsageError, match="no environment named 'prod'"):
        load_app(repo, "demo", environment="prod")


def test_rendering_through_the_loaded_app(load: Callable[..., LoadedApp]) -> None:
    rendered = load().render({"question": "Why?"})
    assert [m.role for m in rendered.messages] == ["system", "user"]
    assert (
        rendered.messages[0].content
        == f"You are a friendly test bot for demo. Ref {canary_token('dev')}."
    )
    assert rendered.messages[1].content == "Question: Why?"
