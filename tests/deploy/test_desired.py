"""desired_app: serving settings from the release bundle, overrides from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from deploy_support import app_manifest, bundle_of, environment_of

from llmops import api
from llmops.deploy.desired import desired_app
from llmops.domain.deploy import SecretEnv
from llmops.domain.errors import InvalidInput
from llmops.releases.bundle import Bundle, build_bundle

ROOT = Path(__file__).resolve().parents[2]

SERVING = {
    "replicas": 2,
    "port": 9090,
    "resources": {"cpu": "500m", "memory": "512Mi"},
    "autoscaling": {"minReplicas": 2, "maxReplicas": 5, "targetCpuUtilization": 60},
    "minAvailable": 1,
    "env": {"LOG_FORMAT": "json", "ZONE": "eu"},
}


def test_serving_settings_come_from_the_release() -> None:
    bundle = bundle_of(app_manifest(serving=SERVING))
    desired = desired_app(bundle, environment_of(), "reg/support-bot@sha256:" + "b" * 64)
    assert desired.app == "support-bot" and desired.env == "prod"
    assert desired.release == bundle.release_id and desired.digest == bundle.digest
    assert desired.image == "reg/support-bot@sha256:" + "b" * 64
    assert (desired.replicas, desired.port, desired.cpu, desired.memory) == (
        2,
        9090,
        "500m",
        "512Mi",
    )
    assert desired.autoscaling == (2, 5, 60)
    assert desired.min_available == 1
    assert desired.env_vars == (
        ("LLMOPS_ENVIRONMENT", "prod"),
        ("LOG_FORMAT", "json"),
        ("ZONE", "eu"),
    )


def test_defaults_when_the_release_sets_no_serving() -> None:
    desired = desired_app(bundle_of(app_manifest()), environment_of("dev"), None)
    assert (desired.replicas, desired.port, desired.cpu, desired.memory) == (
        1,
        8080,
        "250m",
        "256Mi",
    )
    assert desired.autoscaling is None and desired.min_available is None
    assert desired.env_vars == (("LLMOPS_ENVIRONMENT", "dev"),)
    assert desired.image is None


def test_environment_overrides_apply() -> None:
    bundle = bundle_of(app_manifest(serving=SERVING))
    env = environment_of(
        overrides={
            "support-bot": {
                "replicas": 4,
                "resources": {"cpu": "2"},
                "model": {"baseUrl": "http://vllm.llm-prod.svc:8000/v1", "name": "llama-3-8b"},
                "env": {"ZONE": "us", "EXTRA": "1"},
            },
            "other-app": {"replicas": 9},
        }
    )
    desired = desired_app(bundle, env, None)
    assert desired.replicas == 4
    # only the overridden field changes; memory stays the release's
    assert (desired.cpu, desired.memory) == ("2", "512Mi")
    assert desired.env_vars == (
        ("EXTRA", "1"),
        ("LLMOPS_ENVIRONMENT", "prod"),
        ("LLMOPS_MODEL_NAME", "llama-3-8b"),
        ("LLMOPS_MODEL_URL", "http://vllm.llm-prod.svc:8000/v1"),
        ("LOG_FORMAT", "json"),
        ("ZONE", "us"),
    )
    assert [name for name, _ in desired.env_vars] == sorted(name for name, _ in desired.env_vars)


def test_replicas_override_of_zero_is_kept() -> None:
    env = environment_of(overrides={"support-bot": {"replicas": 0}})
    assert desired_app(bundle_of(app_manifest(serving=SERVING)), env, None).replicas == 0


def test_contract_variables_win_over_spec_env() -> None:
    serving = {"env": {"LLMOPS_ENVIRONMENT": "spoofed", "LLMOPS_MODEL_URL": "http://x:1/v1"}}
    env = environment_of(overrides={"support-bot": {"model": {"baseUrl": "http://real:8000/v1"}}})
    desired = dict(desired_app(bundle_of(app_manifest(serving=serving)), env, None).env_vars)
    assert desired["LLMOPS_ENVIRONMENT"] == "prod"
    assert desired["LLMOPS_MODEL_URL"] == "http://real:8000/v1"


def test_release_key_from_env_passes_through() -> None:
    desired = desired_app(bundle_of(app_manifest()), environment_of(), None)
    assert desired.secret_env == (SecretEnv(name="OPENAI_API_KEY", from_env="OPENAI_API_KEY"),)
    assert "LLMOPS_MODEL_API_KEY_ENV" not in dict(desired.env_vars)


def test_override_key_secret_is_mounted_and_named_for_the_runtime() -> None:
    env = environment_of(
        overrides={
            "support-bot": {"model": {"apiKey": {"secret": {"name": "openai", "key": "api-key"}}}}
        }
    )
    desired = desired_app(bundle_of(app_manifest()), env, None)
    assert desired.secret_env == (
        SecretEnv(name="LLMOPS_SECRET_OPENAI_API_KEY", secret_name="openai", secret_key="api-key"),
    )
    assert dict(desired.env_vars)["LLMOPS_MODEL_API_KEY_ENV"] == "LLMOPS_SECRET_OPENAI_API_KEY"


def test_override_key_equal_to_the_release_key_needs_no_pointer() -> None:
    key = {"secret": {"name": "openai", "key": "api-key"}}
    model = {"provider": "openai", "name": "gpt-4o-mini", "apiKey": key}
    env = environment_of(overrides={"support-bot": {"model": {"apiKey": key}}})
    desired = desired_app(bundle_of(app_manifest(model=model)), env, None)
    assert desired.secret_env[0].secret_name == "openai"
    assert "LLMOPS_MODEL_API_KEY_ENV" not in dict(desired.env_vars)


def test_override_key_from_another_variable() -> None:
    env = environment_of(overrides={"support-bot": {"model": {"apiKey": {"env": "PROD_KEY"}}}})
    desired = desired_app(bundle_of(app_manifest()), env, None)
    assert desired.secret_env == (SecretEnv(name="PROD_KEY", from_env="PROD_KEY"),)
    assert dict(desired.env_vars)["LLMOPS_MODEL_API_KEY_ENV"] == "PROD_KEY"


def test_key_from_a_file_sets_no_variable() -> None:
    env = environment_of(
        overrides={"support-bot": {"model": {"apiKey": {"file": "/var/run/secrets/llm/key"}}}}
    )
    desired = desired_app(bundle_of(app_manifest()), env, None)
    assert desired.secret_env == (SecretEnv(name="", file="/var/run/secrets/llm/key"),)
    assert "LLMOPS_MODEL_API_KEY_ENV" not in dict(desired.env_vars)


def test_no_key_at_all() -> None:
    model = {"provider": "stub", "name": "stub"}
    desired = desired_app(bundle_of(app_manifest(model=model)), environment_of(), None)
    assert desired.secret_env == ()


def test_work_tree_changes_after_the_release_do_not_leak_in() -> None:
    """The release's serving settings are used, not the app as it is now."""
    released = bundle_of(app_manifest(serving={"replicas": 2}))
    desired = desired_app(released, environment_of(), None)
    assert desired.replicas == 2
    assert desired.release == released.release_id


def test_fingerprint_follows_every_input() -> None:
    bundle = bundle_of(app_manifest(serving=SERVING))
    base = desired_app(bundle, environment_of(), "img@sha256:" + "a" * 64)
    assert (
        base.fingerprint
        == desired_app(bundle, environment_of(), "img@sha256:" + "a" * 64).fingerprint
    )
    other_image = desired_app(bundle, environment_of(), "img@sha256:" + "c" * 64)
    scaled = desired_app(
        bundle, environment_of(overrides={"support-bot": {"replicas": 7}}), base.image
    )
    other_env = desired_app(bundle, environment_of("test"), base.image)
    assert (
        len({base.fingerprint, other_image.fingerprint, scaled.fingerprint, other_env.fingerprint})
        == 4
    )


def test_example_repo_support_bot_in_prod() -> None:
    repo = api.load(ROOT)
    bundle = build_bundle(repo.apps["support-bot"], ROOT)
    env = repo.environments["prod"].environment
    desired = desired_app(bundle, env, None)
    assert desired.replicas == 3  # prod's override
    assert desired.autoscaling == (2, 6, 70) and desired.min_available == 1
    assert desired.env_vars == (("LLMOPS_ENVIRONMENT", "prod"),)


@pytest.mark.parametrize(
    "document",
    [
        {"manifest": {}},
        {"manifest": {"spec": {"serving": {"replicas": "three"}}}},
        {"manifest": {"spec": {"model": {"apiKey": "sk-literal"}}}},
    ],
)
def test_unreadable_bundle_is_invalid_input(document: dict[str, object]) -> None:
    bundle = Bundle("support-bot", document, b"{}", "0" * 64)
    with pytest.raises(InvalidInput) as info:
        desired_app(bundle, environment_of(), None)
    assert "support-bot@sha256:" in info.value.message
    assert "sk-literal" not in info.value.message
