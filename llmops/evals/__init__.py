"""The eval engine: datasets, assertions, the response cache and the concurrent runner.

Called by ``llmops.evals.api`` (``run_eval``), which ``llmops.cli.eval`` and the pipeline
use. Results are the frozen types of ``llmops.domain.evals``.
"""
