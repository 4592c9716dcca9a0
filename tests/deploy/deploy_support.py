"""Builders and Kubernetes name checks shared by the deploy tests (imported by name)."""

from __future__ import annotations

import re
import string
from typing import Any

from hypothesis import strategies as st

from llmops.domain.archive import canonical_json, sha256_hex
from llmops.domain.deploy import DesiredApp, SecretEnv
from llmops.domain.models import Environment, LLMApp
from llmops.domain.models.secrets import secret_env_name
from llmops.releases.bundle import BUNDLE_SCHEMA_VERSION, Bundle

#: the Kubernetes version every rendered object is validated against (strict schemas)
K8S_VERSION = "1.37"


def app_manifest(name: str = "support-bot", **spec: Any) -> dict[str, Any]:
    """A valid LLMApp manifest (as YAML would hold it) with ``spec`` keys replaced."""
    body: dict[str, Any] = {
        "model": {"provider": "openai", "name": "gpt-4o-mini", "apiKey": {"env": "OPENAI_API_KEY"}},
        "prompt": {"user": "prompts/user.j2"},
    }
    body.update(spec)
    return {
        "apiVersion": "llmops.dev/v1",
        "kind": "LLMApp",
        "metadata": {"name": name},
        "spec": body,
    }


def bundle_of(manifest: dict[str, Any]) -> Bundle:
    """A release bundle as ``build_bundle`` writes one: the resolved manifest, by alias."""
    app = LLMApp.model_validate(manifest)
    document = {
        "schemaVersion": BUNDLE_SCHEMA_VERSION,
        "kind": "ReleaseBundle",
        "app": app.metadata.name,
        "manifest": app.model_dump(mode="json", by_alias=True),
        "files": {"prompts/user.j2": "{{ question }}\n"},
        "suites": {},
    }
    data = canonical_json(document)
    return Bundle(app.metadata.name, document, data, sha256_hex(data))


def environment_of(
    name: str = "prod", target: dict[str, Any] | None = None, **spec: Any
) -> Environment:
    return Environment.model_validate(
        {
            "apiVersion": "llmops.dev/v1",
            "kind": "Environment",
            "metadata": {"name": name},
            "spec": {"target": target or {"kind": "kubernetes", "namespace": "llm-prod"}, **spec},
        }
    )


# --- name and label rules the schemas do not check ---------------------------------------

_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS_1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def _check_labels(labels: dict[str, str], where: str) -> None:
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        assert not prefix or (len(prefix) <= 253 and _DNS_1123_SUBDOMAIN.match(prefix)), (
            where,
            key,
        )
        assert len(name) <= 63 and _LABEL_NAME.match(name), (where, key)
        assert isinstance(value, str) and len(value) <= 63 and _LABEL_VALUE.match(value), (
            where,
            key,
            value,
        )


def check_names(obj: dict[str, Any]) -> None:
    """What the API server would reject although the JSON schema allows it."""
    meta = obj["metadata"]
    name = meta["name"]
    where = f"{obj['kind']}/{name}"
    if obj["kind"] == "Service":
        assert len(name) <= 63 and _DNS_1035.match(name), where
    else:
        assert len(name) <= 253 and _DNS_1123_SUBDOMAIN.match(name), where
    _check_labels(meta.get("labels", {}), where)
    spec = obj.get("spec", {})
    if obj["kind"] == "Deployment":
        _check_labels(spec["template"]["metadata"]["labels"], where)
        matched = spec["selector"]["matchLabels"]
        template = spec["template"]["metadata"]["labels"]
        assert matched.items() <= template.items(), where
        for container in spec["template"]["spec"]["containers"]:
            for port in container["ports"]:
                assert len(port["name"]) <= 15
    if obj["kind"] == "ConfigMap":
        for key in obj["data"]:
            assert _CONFIG_KEY.match(key), (where, key)


# --- hypothesis: any DesiredApp the domain allows (valid names, quantities) ------------

_APP = st.from_regex(r"[a-z]([-a-z0-9]{0,55}[a-z0-9])?", fullmatch=True)
_ENV = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)
_HEX = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
_VAR = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,30}", fullmatch=True)
_CPU = st.one_of(
    st.integers(1, 64000).map(lambda n: f"{n}m"),
    st.integers(1, 64).map(str),
    st.sampled_from(["0.5", "1.5", "2"]),
)
_MEMORY = st.one_of(
    st.integers(1, 65536).map(lambda n: f"{n}Mi"),
    st.integers(1, 64).map(lambda n: f"{n}Gi"),
    st.integers(1_000_000, 10**10).map(str),
)
_SECRET_NAME = st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,20}[a-z0-9])?", fullmatch=True)
_SECRET_KEY = st.text(
    alphabet=string.ascii_letters + string.digits + "-._", min_size=1, max_size=20
)


@st.composite
def secret_envs(draw: st.DrawFn) -> SecretEnv:
    kind = draw(st.sampled_from(["secret", "env", "file"]))
    if kind == "secret":
        name, key = draw(_SECRET_NAME), draw(_SECRET_KEY)
        return SecretEnv(secret_env_name(name, key), secret_name=name, secret_key=key)
    if kind == "env":
        var = draw(_VAR)
        return SecretEnv(var, from_env=var)
    return SecretEnv("", file="/run/" + draw(_SECRET_KEY))


@st.composite
def desired_apps(draw: st.DrawFn) -> DesiredApp:
    app = draw(_APP)
    lower = draw(st.integers(1, 1000))
    scaling = draw(
        st.none() | st.tuples(st.just(lower), st.integers(lower, 1000), st.integers(1, 100))
    )
    env_vars = draw(st.dictionaries(_VAR, st.text(max_size=40), max_size=6))
    return DesiredApp(
        app=app,
        env=draw(_ENV),
        release=f"{app}@sha256:{draw(_HEX)}",
        image=draw(st.none() | _HEX.map(lambda h: f"registry.local:5000/x/{app}@sha256:{h}")),
        replicas=draw(st.integers(0, 1000)),
        port=draw(st.integers(1, 65535)),
        cpu=draw(_CPU),
        memory=draw(_MEMORY),
        env_vars=tuple(sorted(env_vars.items())),
        secret_env=tuple(draw(st.lists(secret_envs(), max_size=3))),
        autoscaling=scaling,
        min_available=draw(st.none() | st.integers(0, 1000)),
    )
