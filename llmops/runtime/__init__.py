"""The prompt runtime: rendering, guardrails, and the HTTP server that `llmops serve` runs."""
