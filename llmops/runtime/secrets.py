"""Resolve a manifest's secret reference to its value; called by the runtime and evals.

A :class:`~llmops.domain.models.secrets.SecretRef` names where a secret lives, never its
value:

- ``{env: OPENAI_API_KEY}`` reads that environment variable;
- ``{file: /var/run/secrets/llm/api-key}`` reads that mounted file (surrounding whitespace
  and the trailing newline are stripped);
- ``{secret: {name: openai, key: api-key}}`` is a Kubernetes Secret key. The deployer
  mounts it into the container as the environment variable
  ``LLMOPS_SECRET_<NAME>_<KEY>`` in upper snake case (every character that is not a
  letter or digit becomes ``_``): here ``LLMOPS_SECRET_OPENAI_API_KEY``. Run locally,
  export that variable yourself.

Pure: the environment and the file reader are passed in. Errors are ``Permanent`` and name
the variable or file that is missing, never a value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from llmops.domain.errors import Permanent
from llmops.domain.models.secrets import SECRET_ENV_PREFIX, SecretRef, secret_env_name

# re-exported: the naming rule lives in the domain so deploy can mount what the runtime reads
__all__ = ["SECRET_ENV_PREFIX", "read_secret_file", "resolve_api_key", "secret_env_name"]


def read_secret_file(path: str) -> str:
    """Read a mounted secret file as text; the ``read_file`` to pass in production."""
    return Path(path).read_text(encoding="utf-8")


def resolve_api_key(
    ref: SecretRef | None,
    environ: Mapping[str, str],
    read_file: Callable[[str], str],
) -> str | None:
    """The secret ``ref`` points to, or None when there is no reference.

    Raises ``Permanent`` when the variable is unset or empty, or the file cannot be read
    or is empty; the message names the variable or file and what to do.
    """
    if ref is None:
        return None
    if ref.env is not None:
        return _from_env(environ, ref.env, "apiKey.env")
    if ref.secret is not None:
        variable = secret_env_name(ref.secret.name, ref.secret.key)
        where = f"apiKey.secret {ref.secret.name}/{ref.secret.key}, mounted as"
        return _from_env(environ, variable, where)
    assert ref.file is not None  # SecretRef holds exactly one of env, file, secret
    try:
        value = read_file(ref.file).strip()
    except FileNotFoundError as exc:
        raise Permanent(f"secret file {ref.file} (apiKey.file) does not exist") from exc
    except IsADirectoryError as exc:
        raise Permanent(f"secret file {ref.file} (apiKey.file) is a directory") from exc
    except PermissionError as exc:
        raise Permanent(f"secret file {ref.file} (apiKey.file) is not readable") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise Permanent(
            f"secret file {ref.file} (apiKey.file) cannot be read: {type(exc).__name__}"
        ) from exc
    if not value:
        raise Permanent(f"secret file {ref.file} (apiKey.file) is empty")
    return value


def _from_env(environ: Mapping[str, str], variable: str, where: str) -> str:
    value = environ.get(variable, "").strip()
    if not value:
        state = "is empty" if variable in environ else "is not set"
        raise Permanent(
            f"{where} environment variable {variable} {state}; export it or mount the secret"
        )
    return value
