"""Adapters: the only modules that talk to the world (HTTP model providers, git, docker, ...)."""
