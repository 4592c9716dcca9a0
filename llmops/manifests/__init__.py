"""Reading manifests from a repository: safe YAML with positions, validation, cross-references.

Called by ``llmops.api``; returns frozen ``llmops.domain.repo.Repo`` values and
``Diagnostic`` lists, never raw dicts.
"""
