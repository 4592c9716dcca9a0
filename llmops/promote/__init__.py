"""Promotion and rollback through git: pin rewriting, plans, messages, and applying a plan.

``pins`` rewrites one pin in an Environment's YAML text; ``ledger`` reads evidence,
holds and history from ledger entries; ``checks``, ``plan`` and ``rollback`` decide,
check by check; ``message`` writes the commit message and the pull request's body. All
of these are pure. ``apply`` carries a plan out through the ``GitOps`` and
``PullRequests`` ports it is handed; ``llmops.ops.promote`` gathers the facts and the
real adapters (``llmops.adapters.gitops``, ``.github``).
"""
