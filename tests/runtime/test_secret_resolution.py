"""resolve_api_key reads env vars, mounted files and deployer-mounted Secret keys; its
errors name the variable or file and never a value."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops.domain.errors import Permanent
from llmops.domain.models.secrets import SecretRef
from llmops.runtime.secrets import read_secret_file, resolve_api_key, secret_env_name

KEY = "sk-live-0123456789abcdef"


def ref(data: object) -> SecretRef:
    return SecretRef.model_validate(data)


def no_files(path: str) -> str:
    raise AssertionError(f"no file should be read, got {path}")


def test_no_reference_means_no_key() -> None:
    assert resolve_api_key(None, {}, no_files) is None


def test_env_reference() -> None:
    assert resolve_api_key(ref({"env": "OPENAI_API_KEY"}), {"OPENAI_API_KEY": KEY}, no_files) == KEY


@pytest.mark.parametrize("environ", [{}, {"OPENAI_API_KEY": "  "}])
def test_missing_or_empty_env_var_names_the_variable(environ: dict[str, str]) -> None:
    with pytest.raises(Permanent) as info:
        resolve_api_key(ref({"env": "OPENAI_API_KEY"}), environ, no_files)
    assert "OPENAI_API_KEY" in str(info.value)
    assert ("is empty" if environ else "is not set") in str(info.value)


def test_file_reference_strips_the_trailing_newline(tmp_path: Path) -> None:
    path = tmp_path / "api-key"
    path.write_text(KEY + "\n")
    assert resolve_api_key(ref({"file": str(path)}), {}, read_secret_file) == KEY


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope"
    with pytest.raises(Permanent, match="does not exist") as info:
        resolve_api_key(ref({"file": str(path)}), {}, read_secret_file)
    assert str(path) in str(info.value)
    assert isinstance(info.value.__cause__, FileNotFoundError)


def test_empty_file_and_directory_are_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(Permanent, match="is empty"):
        resolve_api_key(ref({"file": str(empty)}), {}, read_secret_file)
    with pytest.raises(Permanent, match="is a directory"):
        resolve_api_key(ref({"file": str(tmp_path)}), {}, read_secret_file)


def test_secret_reference_reads_the_variable_the_deployer_mounts() -> None:
    assert secret_env_name("openai", "api-key") == "LLMOPS_SECRET_OPENAI_API_KEY"
    assert secret_env_name("llm.keys", "Token") == "LLMOPS_SECRET_LLM_KEYS_TOKEN"
    secret = ref({"secret": {"name": "openai", "key": "api-key"}})
    environ = {"LLMOPS_SECRET_OPENAI_API_KEY": KEY}
    assert resolve_api_key(secret, environ, no_files) == KEY


def test_missing_secret_variable_names_secret_and_variable() -> None:
    secret = ref({"secret": {"name": "openai", "key": "api-key"}})
    with pytest.raises(Permanent) as info:
        resolve_api_key(secret, {"OPENAI_API_KEY": KEY}, no_files)
    message = str(info.value)
    assert "openai/api-key" in message and "LLMOPS_SECRET_OPENAI_API_KEY" in message
    assert KEY not in message


def test_read_errors_never_show_the_content() -> None:
    def unreadable(path: str) -> str:
        raise UnicodeDecodeError("utf-8", KEY.encode(), 0, 1, "invalid start byte")

    with pytest.raises(Permanent) as info:
        resolve_api_key(ref({"file": "/run/secrets/key"}), {}, unreadable)
    assert KEY not in str(info.value) and "/run/secrets/key" in str(info.value)
