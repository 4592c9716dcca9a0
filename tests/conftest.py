"""Fixtures shared across test packages: a Kubernetes API test server and Docker services."""

pytest_plugins = ["support.kube", "support.docker"]
