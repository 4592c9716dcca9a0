"""Use cases behind ``llmops.api``: each module one family of commands."""
