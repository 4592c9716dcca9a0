"""Manifest models of the four kinds; ``KINDS`` maps each kind name to its model."""

from __future__ import annotations

from pydantic import BaseModel

from llmops.domain.models.app import LLMApp
from llmops.domain.models.base import API_VERSION
from llmops.domain.models.environment import Environment
from llmops.domain.models.evalsuite import EvalSuite
from llmops.domain.models.pipeline import Pipeline

KINDS: dict[str, type[BaseModel]] = {
    "LLMApp": LLMApp,
    "EvalSuite": EvalSuite,
    "Environment": Environment,
    "Pipeline": Pipeline,
}

__all__ = ["API_VERSION", "KINDS", "Environment", "EvalSuite", "LLMApp", "Pipeline"]
