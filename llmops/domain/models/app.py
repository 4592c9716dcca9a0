"""The LLMApp kind: one deployable LLM application.

Loaded by ``llmops.manifests``; read by the runtime, evals, releases and deploy.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from llmops.domain.ids import IDENTIFIER_RE
from llmops.domain.models.base import Metadata, Quantity, Regex, RelPath, Strict, empty_list
from llmops.domain.models.secrets import SecretRef

Provider = Literal["openai", "openai-compatible", "vllm", "ollama", "llamacpp", "stub"]

DEFAULT_BASE_URLS: dict[str, str] = {
    "openai": "https://api.openai.com/v1",
    "vllm": "http://localhost:8000/v1",
    "ollama": "http://localhost:11434/v1",
    "llamacpp": "http://localhost:8080/v1",
}

#: Names every prompt template may use besides the app's declared inputs.
TEMPLATE_BUILTINS: dict[str, str] = {
    "app": "the app's name",
    "release": "the release id being served (`<app>@sha256:…`), or 'dev' when run from a work tree",
    "environment": "the environment's name, or 'local'",
    "canary": "the per-release canary token; the output guardrail blocks any reply containing it",
    "inputs": "a mapping of every input value, for loops and conditionals over all of them",
}


def _http_url(value: str) -> str:
    if not (value.startswith("http://") or value.startswith("https://")) or len(value) < 10:
        raise PydanticCustomError(
            "url",
            "{value} is not an http(s) URL, e.g. http://localhost:8000/v1",
            {"value": repr(value)},
        )
    if "@" in value.split("//", 1)[1].split("/", 1)[0]:
        raise PydanticCustomError(
            "url_credentials",
            "URLs must not carry credentials; reference an API key with apiKey instead",
        )
    return value


class ModelParams(Strict):
    """Sampling parameters sent with every request (mapped to the provider's names)."""

    temperature: float | None = Field(default=None, ge=0, le=2, description="Sampling temperature.")
    top_p: float | None = Field(default=None, ge=0, le=1, description="Nucleus sampling mass.")
    max_tokens: int | None = Field(
        default=None, ge=1, le=1_000_000, description="Upper bound on generated tokens."
    )
    presence_penalty: float | None = Field(default=None, ge=-2, le=2, description="Presence penalty.")
    frequency_penalty: float | None = Field(
        default=None, ge=-2, le=2, description="Frequency penalty."
    )
    seed: int | None = Field(default=None, description="Seed for providers that support it.")
    stop: list[str] = Field(default_factory=empty_list, max_length=4, description="Stop sequences.")
    response_format: Literal["text", "json_object"] | None = Field(
        default=None, description="Ask the provider for plain text or a JSON object."
    )
    extra_body: dict[str, Any] = Field(
        default_factory=dict,
        description="Provider-specific parameters passed through verbatim (e.g. top_k for vLLM).",
    )


class Pricing(Strict):
    """Price per million tokens in USD, to compute cost; overrides the built-in table."""

    input_per_million: float = Field(ge=0, description="USD per 1M prompt tokens.")
    output_per_million: float = Field(ge=0, description="USD per 1M completion tokens.")


class ModelSpec(Strict):
    """Which model answers, where, and how it is called."""

    provider: Provider = Field(
        description="Backend family; all speak the OpenAI chat-completions API. "
        "'stub' is llmops' built-in test model."
    )
    name: str = Field(min_length=1, max_length=256, description="Model id sent to the provider.")
    base_url: str | None = Field(
        default=None,
        description="Endpoint base URL; defaults per provider (openai: https://api.openai.com/v1).",
    )
    api_key: SecretRef | None = Field(
        default=None, description="Where the API key comes from; never a literal value."
    )
    params: ModelParams = Field(default_factory=ModelParams, description="Sampling parameters.")
    timeout_seconds: float = Field(default=30, gt=0, le=600, description="Per-request timeout.")
    max_retries: int = Field(default=2, ge=0, le=10, description="Retries on 429/5xx/timeouts.")
    pricing: Pricing | None = Field(default=None, description="Token prices for cost reporting.")

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)

    @model_validator(mode="after")
    def _base_url_needed(self) -> ModelSpec:
        if self.provider == "openai-compatible" and self.base_url is None:
            raise PydanticCustomError(
                "base_url_required",
                "provider 'openai-compatible' needs baseUrl (e.g. http://localhost:8000/v1)",
            )
        return self


InputType = Literal["string", "integer", "number", "boolean"]
_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


_ARTICLE = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
}
_KIND_NAMES = {
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "dict": "mapping",
    "list": "list",
    "NoneType": "null",
}


def _kind(value: Any) -> str:
    return _KIND_NAMES.get(type(value).__name__, type(value).__name__)


def input_value_problem(spec: InputSpec, value: Any) -> str | None:
    """Why ``value`` does not fit ``spec``, or None. Shared by validation and the runtime."""
    expected = _PY_TYPES[spec.type]
    if (isinstance(value, bool) and spec.type != "boolean") or not isinstance(value, expected):
        return f"must be {_ARTICLE[spec.type]} (got {_kind(value)} {value!r:.60})"
    if isinstance(value, str):
        if spec.max_length is not None and len(value) > spec.max_length:
            return f"must be at most {spec.max_length} characters (got {len(value)})"
        if spec.min_length is not None and len(value) < spec.min_length:
            return f"must be at least {spec.min_length} characters (got {len(value)})"
    if isinstance(value, int | float) and not isinstance(value, bool):
        if spec.minimum is not None and value < spec.minimum:
            return f"must be ≥ {spec.minimum} (got {value})"
        if spec.maximum is not None and value > spec.maximum:
            return f"must be ≤ {spec.maximum} (got {value})"
    if spec.enum and value not in spec.enum:
        return f"must be one of {', '.join(map(repr, spec.enum))} (got {value!r:.60})"
    return None


class InputSpec(Strict):
    """One input variable of the prompt, validated before rendering."""

    type: InputType = Field(default="string", description="JSON type of the value.")
    description: str = Field(default="", description="What the caller should pass.")
    default: Any = Field(default=None, description="Value used when the caller omits it.")
    required: bool | None = Field(
        default=None, description="Whether callers must pass it; default: true unless a default is set."
    )
    max_length: int | None = Field(default=None, ge=0, description="Longest accepted string.")
    min_length: int | None = Field(default=None, ge=0, description="Shortest accepted string.")
    minimum: float | None = Field(default=None, description="Smallest accepted number.")
    maximum: float | None = Field(default=None, description="Largest accepted number.")
    enum: list[Any] = Field(default_factory=empty_list, description="The only accepted values, if set.")

    @property
    def is_required(self) -> bool:
        return self.required if self.required is not None else self.default is None

    @model_validator(mode="after")
    def _default_fits(self) -> InputSpec:
        if self.default is not None:
            problem = input_value_problem(self, self.default)
            if problem:
                raise PydanticCustomError("bad_default", "default {problem}", {"problem": problem})
        return self


class PromptSpec(Strict):
    """The prompt: Jinja2 templates rendered in the sandbox, and their declared inputs."""

    system: RelPath | None = Field(
        default=None, description="System prompt template, relative to the app directory."
    )
    user: RelPath = Field(description="User message template, relative to the app directory.")
    inputs: dict[str, InputSpec] = Field(
        default_factory=dict, description="Input variables the templates may use."
    )

    @field_validator("inputs")
    @classmethod
    def _input_names(cls, value: dict[str, InputSpec]) -> dict[str, InputSpec]:
        for name in value:
            if not IDENTIFIER_RE.match(name):
                raise PydanticCustomError(
                    "input_name",
                    "input name {name} must be an identifier (letters, digits, '_')",
                    {"name": repr(name)},
                )
            if name in TEMPLATE_BUILTINS:
                raise PydanticCustomError(
                    "input_name",
                    "input name {name} is a built-in template variable; pick another name",
                    {"name": repr(name)},
                )
        return value


class InputGuardrails(Strict):
    """Checks on the caller's inputs before anything is sent to the model."""

    max_length: int = Field(
        default=16000, ge=1, description="Longest accepted total length of all string inputs."
    )
    deny_patterns: list[Regex] = Field(
        default_factory=empty_list, description="Regular expressions; a match rejects the request."
    )
    injection_heuristics: bool = Field(
        default=True, description="Reject inputs that look like prompt-injection attempts."
    )


PiiKind = Literal["email", "phone", "card"]


class OutputGuardrails(Strict):
    """Checks on the model's reply before it is returned."""

    json_schema: RelPath | dict[str, Any] | None = Field(
        default=None,
        description="A JSON Schema the reply must satisfy: a file relative to the app, or inline.",
    )
    repair_retries: int = Field(
        default=0, ge=0, le=1, description="Ask the model once more to fix a reply that breaks the schema."
    )
    block_canary: bool = Field(
        default=True, description="Block replies that contain the release's canary token."
    )
    redact_pii: list[PiiKind] = Field(
        default_factory=empty_list, description="PII kinds replaced by [REDACTED:<kind>] in replies."
    )
    max_length: int | None = Field(default=None, ge=1, description="Longest accepted reply.")


class Guardrails(Strict):
    """Input and output checks, each counted in /metrics and answered with a clear 4xx."""

    input: InputGuardrails = Field(default_factory=InputGuardrails, description="Input checks.")
    output: OutputGuardrails = Field(default_factory=OutputGuardrails, description="Output checks.")


class Resources(Strict):
    """Container resource requests (also used as limits for memory)."""

    cpu: Quantity = Field(default="250m", description="CPU request, e.g. 250m.")
    memory: Quantity = Field(default="256Mi", description="Memory request and limit, e.g. 256Mi.")


class Autoscaling(Strict):
    """A HorizontalPodAutoscaler on CPU utilisation."""

    min_replicas: int = Field(default=1, ge=1, le=1000, description="Lower bound.")
    max_replicas: int = Field(ge=1, le=1000, description="Upper bound.")
    target_cpu_utilization: int = Field(default=75, ge=1, le=100, description="Target CPU %.")

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.max_replicas < self.min_replicas:
            raise PydanticCustomError(
                "autoscaling_bounds",
                "maxReplicas ({max}) must be ≥ minReplicas ({min})",
                {"max": self.max_replicas, "min": self.min_replicas},
            )
        return self


class Serving(Strict):
    """How the app runs when deployed."""

    replicas: int = Field(default=1, ge=0, le=1000, description="Pods (or processes) to run.")
    port: int = Field(default=8080, ge=1, le=65535, description="Port the runtime listens on.")
    resources: Resources = Field(default_factory=Resources, description="Resource requests.")
    autoscaling: Autoscaling | None = Field(default=None, description="Optional HPA.")
    min_available: int | None = Field(
        default=None, ge=0, description="Optional PodDisruptionBudget minAvailable."
    )
    env: dict[str, str] = Field(
        default_factory=dict, description="Plain environment variables; never secrets."
    )


class AppSpec(Strict):
    """Everything that defines one LLM app's behaviour; hashed into its release."""

    description: str = Field(default="", description="What the app is for.")
    model: ModelSpec = Field(description="The model backend and its parameters.")
    prompt: PromptSpec = Field(description="Prompt templates and inputs.")
    guardrails: Guardrails = Field(default_factory=Guardrails, description="Input/output checks.")
    serving: Serving = Field(default_factory=Serving, description="Deployment settings.")
    evals: list[RelPath] = Field(
        default_factory=empty_list, description="EvalSuite files this app must pass, relative to the app."
    )


class LLMApp(Strict):
    """An LLM application: manifests/<app>/app.yaml."""

    api_version: Literal["llmops.dev/v1"] = Field(description="Always llmops.dev/v1.")
    kind: Literal["LLMApp"] = Field(description="Always LLMApp.")
    metadata: Metadata = Field(description="Name and labels.")
    spec: AppSpec = Field(description="The app.")
