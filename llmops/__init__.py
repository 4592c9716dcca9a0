"""llmops: a GitOps release pipeline for LLM applications.

Importing the package is cheap on purpose: the CLI's ``--help`` must start fast,
so nothing heavy (pydantic, jinja2, docker, kubernetes) is imported here.
"""

__version__ = "0.1.0"
