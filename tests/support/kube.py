"""Kubernetes API test server fixtures (filled in by the deploy work)."""
