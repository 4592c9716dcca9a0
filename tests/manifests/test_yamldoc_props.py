"""Property tests: whatever is written into a manifest, validation only ever produces
diagnostics (never an exception), and ``yamldoc.parse`` round-trips plain data."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmops.manifests.repository import validate_repo
from llmops.manifests.yamldoc import YamlDoc, YamlError, parse

PROPS = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

APP_YAML = """\
apiVersion: llmops.dev/v1
kind: LLMApp
metadata:
  name: demo
  labels: {team: care}
spec:
  description: Answers questions about Acme Cloud.
  model:
    provider: stub
    name: echo
    apiKey: {env: DEMO_API_KEY}
    params:
      temperature: 0.2
      maxTokens: 200
      stop: ["\\n\\n"]
  prompt:
    system: prompts/system.j2
    user: prompts/user.j2
    inputs:
      question:
        type: string
        maxLength: 2000
      tier:
        type: string
        default: free
        enum: [free, paid]
  guardrails:
    input:
      denyPatterns: ["(?i)password"]
    output:
      jsonSchema: {type: object, required: [answer]}
      redactPii: [email]
  serving:
    replicas: 1
    resources: {cpu: 250m, memory: 256Mi}
    autoscaling: {minReplicas: 1, maxReplicas: 3}
    env: {LOG_LEVEL: info}
  evals:
    - evals/smoke.yaml
"""

BASE_FILES = {
    "manifests/demo/app.yaml": APP_YAML,
    "manifests/demo/prompts/system.j2": "You are {{ app }} ({{ tier }}); hide {{ canary }}.\n",
    "manifests/demo/prompts/user.j2": "{{ question }}\n",
    "manifests/demo/evals/smoke.yaml": """\
apiVersion: llmops.dev/v1
kind: EvalSuite
metadata:
  name: smoke
spec:
  defaults:
    inputs: {tier: paid}
  cases:
    - id: refund
      inputs: {question: "Refunds?"}
      assert:
        - {type: icontains, value: refund}
        - {type: length, max: 400}
""",
    "environments/dev.yaml": f"""\
apiVersion: llmops.dev/v1
kind: Environment
metadata:
  name: dev
spec:
  target: {{kind: local}}
  overrides:
    demo: {{replicas: 1, env: {{MODE: dev}}}}
  releases:
    demo: demo@sha256:{"ab" * 32}
""",
    "pipelines/default.yaml": """\
apiVersion: llmops.dev/v1
kind: Pipeline
metadata:
  name: default
spec:
  stages:
    - env: dev
      source: head
      soak: 1h30m
      gate: {suites: [smoke], minPassRate: 0.9, requiredCases: [smoke/refund]}
""",
}

TARGETS = [
    "manifests/demo/app.yaml",
    "manifests/demo/evals/smoke.yaml",
    "environments/dev.yaml",
    "pipelines/default.yaml",
    "manifests/demo/prompts/user.j2",
]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("props") / "repo"
    for rel, text in BASE_FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def check_never_raises(root: Path, rel: str, content: bytes) -> None:
    """Write ``content`` to ``rel``, validate, restore; only diagnostics may come out."""
    path = root / rel
    original = path.read_bytes()
    path.write_bytes(content)
    try:
        report = validate_repo(root)
    finally:
        path.write_bytes(original)
    for diagnostic in report.diagnostics:
        assert diagnostic.file
        assert diagnostic.line >= 0 and diagnostic.column >= 0
        assert diagnostic.render()
    assert (report.repo is None) == (not report.ok)


def test_base_repo_is_valid(repo: Path) -> None:
    report = validate_repo(repo)
    assert report.diagnostics == (), [d.render() for d in report.diagnostics]


# ---- (a) validation never raises


@PROPS
@given(target=st.sampled_from(TARGETS), text=st.text())
def test_arbitrary_text_gives_only_diagnostics(repo: Path, target: str, text: str) -> None:
    check_never_raises(repo, target, text.encode("utf-8", "surrogatepass"))


@PROPS
@given(target=st.sampled_from(TARGETS), data=st.binary())
def test_arbitrary_bytes_give_only_diagnostics(repo: Path, target: str, data: bytes) -> None:
    check_never_raises(repo, target, data)


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["", "llmops.dev/v1", "LLMApp", "EvalSuite", "stub", "1h", "250m", "demo"])
)
KEYS = st.sampled_from(
    [
        "apiVersion",
        "kind",
        "metadata",
        "spec",
        "name",
        "model",
        "prompt",
        "inputs",
        "params",
        "temperature",
        "max_tokens",
        "cases",
        "assert",
        "type",
        "value",
        "stages",
        "env",
        "gate",
        "releases",
        "overrides",
        "target",
        "evals",
        "user",
        "system",
        "apiKey",
        "<<",
    ]
) | st.text(max_size=10)
yamlish = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=5),
    max_leaves=25,
)


@PROPS
@given(target=st.sampled_from(TARGETS[:4]), data=yamlish)
def test_yamlish_documents_give_only_diagnostics(repo: Path, target: str, data: Any) -> None:
    check_never_raises(repo, target, yaml.safe_dump(data, allow_unicode=True).encode())


def _paths(node: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*path, index))


def _replace(node: Any, path: tuple[str | int, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(node, dict):
        return {k: (_replace(v, rest, value) if k == head else v) for k, v in node.items()}
    return [_replace(v, rest, value) if i == head else v for i, v in enumerate(node)]


@st.composite
def mutated_manifest(draw: st.DrawFn) -> tuple[str, str]:
    """A valid manifest with one subtree replaced, or a key dropped, dumped as YAML."""
    target = draw(st.sampled_from(TARGETS[:4]))
    data = yaml.safe_load(BASE_FILES[target])
    path = draw(st.sampled_from(list(_paths(data))))
    drop: bool = draw(st.booleans())
    if path and drop:
        parent = _paths_get(data, path[:-1])
        trimmed: Any
        if isinstance(parent, dict):
            trimmed = {k: v for k, v in parent.items() if k != path[-1]}
        else:
            trimmed = [v for i, v in enumerate(parent) if i != path[-1]]
        data = _replace(data, path[:-1], trimmed)
    else:
        data = _replace(data, path, draw(yamlish))
    return target, yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def _paths_get(node: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        node = node[part]
    return node


@PROPS
@given(case=mutated_manifest())
def test_mutated_manifests_give_only_diagnostics(repo: Path, case: tuple[str, str]) -> None:
    target, text = case
    check_never_raises(repo, target, text.encode())


@st.composite
def mutated_text(draw: st.DrawFn) -> tuple[str, str]:
    """A manifest's text with a line deleted or duplicated, or characters swapped or inserted."""
    target = draw(st.sampled_from(TARGETS))
    text = BASE_FILES[target]
    lines = text.splitlines(keepends=True)
    how = draw(st.sampled_from(["delete-line", "duplicate-line", "swap", "insert", "truncate"]))
    if how == "delete-line":
        del lines[draw(st.integers(0, len(lines) - 1))]
        return target, "".join(lines)
    if how == "duplicate-line":
        i = draw(st.integers(0, len(lines) - 1))
        lines.insert(i, lines[i])
        return target, "".join(lines)
    if how == "swap":
        i = draw(st.integers(0, len(text) - 2))
        j = draw(st.integers(0, len(text) - 1))
        chars = list(text)
        chars[i], chars[j] = chars[j], chars[i]
        return target, "".join(chars)
    if how == "insert":
        i = draw(st.integers(0, len(text)))
        extra = draw(st.sampled_from(list(":-[]{}&*!|>'\"#%@`\t\n ,?<")) | st.text(max_size=3))
        return target, text[:i] + extra + text[i:]
    return target, text[: draw(st.integers(0, len(text)))]


@PROPS
@given(case=mutated_text())
def test_mutated_text_gives_only_diagnostics(repo: Path, case: tuple[str, str]) -> None:
    target, text = case
    check_never_raises(repo, target, text.encode())


# ---- (b) parse round-trips plain data


def json_like(texts: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    scalars = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | texts
    )
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=5) | st.dictionaries(texts, children, max_size=5)
        ),
        max_leaves=30,
    )


#: PyYAML's emitter writes U+0085 (NEL) raw when allow_unicode=True, and no YAML
#: reader reads that back (yaml.safe_load included); escaped output is exact.
UNICODE_TEXT = st.text(alphabet=st.characters(exclude_characters="\x85", codec="utf-8"))


def _has_path(data: Any, path: tuple[str | int, ...]) -> bool:
    node = data
    for part in path:
        in_dict = isinstance(node, dict) and isinstance(part, str) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if not (in_dict or in_list):
            return False
        node = node[part]
    return True


def _same(a: Any, b: Any) -> bool:
    """Equality that also requires the same types (True is not 1, 1.0 is not 1)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return type(a) is type(b) and a == b


@PROPS
@given(data=json_like(UNICODE_TEXT), flow=st.booleans())
def test_parse_round_trips_plain_data(data: Any, flow: bool) -> None:
    text = yaml.safe_dump(data, default_flow_style=flow, allow_unicode=True)
    doc = parse(text)
    assert _same(doc.data, data)
    _check_marks(doc)


@PROPS
@given(data=json_like(st.text()))
def test_parse_round_trips_ascii_escaped_data(data: Any) -> None:
    doc = parse(yaml.safe_dump(data, allow_unicode=False, width=20))
    assert _same(doc.data, data)
    _check_marks(doc)


def _check_marks(doc: YamlDoc) -> None:
    for path, mark in doc.marks.items():
        assert _has_path(doc.data, path), path
        assert mark.line >= 1 and mark.column >= 1
    for path, mark in doc.key_marks.items():
        assert path and _has_path(doc.data, path), path
        assert mark.line >= 1 and mark.column >= 1
    for path in _paths(doc.data):
        assert path in doc.marks, path
        if path:
            assert doc.mark_for(path) == doc.marks[path]


@PROPS
@given(text=st.text())
def test_parse_raises_only_yaml_error(text: str) -> None:
    try:
        doc = parse(text)
    except YamlError as exc:
        assert exc.mark.line >= 1 and exc.mark.column >= 1
        assert exc.message
    else:
        _check_marks(doc)


def _outcome(fn: Any, text: str) -> tuple[str, Any]:
    try:
        return ("data", fn(text).data)
    except YamlError as exc:
        return ("error", (exc.message, exc.mark, exc.path))


@PROPS
@given(data=json_like(st.text()), flow=st.booleans())
def test_fast_path_and_node_path_agree_on_documents(data: Any, flow: bool) -> None:
    from llmops.manifests.yamldoc import _parse_nodes

    text = yaml.safe_dump(data, default_flow_style=flow, allow_unicode=True)
    assert _outcome(parse, text) == _outcome(_parse_nodes, text)


@PROPS
@given(text=st.text(alphabet=st.sampled_from(list("ab:-&*<!{}[], \n\"'#0")), max_size=80))
def test_fast_path_and_node_path_agree_on_any_text(text: str) -> None:
    """Anchors, aliases, merge keys, tags, duplicates and syntax errors included."""
    from llmops.manifests.yamldoc import _parse_nodes

    fast, slow = _outcome(parse, text), _outcome(_parse_nodes, text)
    if fast[0] == "data" and slow[0] == "data":
        assert _same(fast[1], slow[1])
    else:
        assert fast == slow
