"""Test support: real services the suite starts (a Kubernetes API test server, Docker)."""
