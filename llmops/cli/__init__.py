"""The command line: thin commands that call ``llmops.api`` and render the result."""
