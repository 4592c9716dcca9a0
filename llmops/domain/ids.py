"""Identifier rules shared by manifests, releases and Kubernetes names. Pure functions."""

from __future__ import annotations

import re

DNS_LABEL_MAX = 63
DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
RELEASE_ID_RE = re.compile(r"^(?P<app>[a-z0-9]([-a-z0-9]*[a-z0-9])?)@sha256:(?P<digest>[0-9a-f]{64})$")
IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CASE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def dns_label_problem(name: str) -> str | None:
    """Why ``name`` is not a DNS label (RFC 1123), or None when it is one."""
    if not name:
        return "must not be empty"
    if len(name) > DNS_LABEL_MAX:
        return f"must be at most {DNS_LABEL_MAX} characters (got {len(name)})"
    if not DNS_LABEL_RE.match(name):
        return (
            f"{name!r} is not a valid name: use lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (it becomes a Kubernetes name)"
        )
    return None


def release_id_problem(value: str) -> str | None:
    """Why ``value`` is not a release id ``<app>@sha256:<64 hex>``, or None."""
    if RELEASE_ID_RE.match(value):
        return None
    return (
        f"{value!r} is not a release id: expected <app>@sha256:<64 lowercase hex digits>, "
        "as printed by `llmops release list`"
    )


def release_app(release_id: str) -> str:
    """The app name of a well-formed release id."""
    return release_id.split("@", 1)[0]
