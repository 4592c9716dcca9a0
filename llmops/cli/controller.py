"""``llmops controller``: reconcile continuously in a cluster (leader election, webhook,
health and metrics); ``llmops controller manifests``: print what installs it.

Thin: options become a ``llmops.controller.run.Controller`` around a pass function that
calls the reconciler (``llmops.ops.reconcile``), and a stream of YAML documents from
``llmops.controller.manifests``.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import socket
import uuid
from pathlib import Path
from typing import Any

import click

from llmops.controller.types import (
    AppFailure,
    EnvResult,
    GateFailure,
    PassFn,
    PassOutcome,
    PassRequest,
    Promotion,
    Rollback,
)
from llmops.domain.errors import UsageError

IN_CLUSTER_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
DEFAULT_NAMESPACE = "llmops-system"


def _default_lease_namespace() -> str:
    from_env = os.environ.get("POD_NAMESPACE")
    if from_env:
        return from_env
    try:
        return IN_CLUSTER_NAMESPACE_FILE.read_text().strip() or DEFAULT_NAMESPACE
    except OSError:
        return DEFAULT_NAMESPACE


def _default_identity() -> str:
    # a pod's name is unique while it lives; elsewhere add a random part, so two local
    # processes on one host never share an identity
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def _load_pass_fn(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise UsageError(f"--pass-fn wants MODULE:ATTRIBUTE, got {spec!r}")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"--pass-fn {spec}: {exc}") from exc
    if not callable(target):
        raise UsageError(f"--pass-fn {spec} is not callable")
    return target


@click.group(invoke_without_command=True)
@click.option("--repo", metavar="PATH|URL", help="The llmops git repository: a local path or a clone URL.")
@click.option("--branch", help="The branch to reconcile and whose pushes trigger a pass  [default: the repository's default]")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where a repository given by URL is cloned  [default: ~/.cache/llmops/controller]",
)
@click.option("--env", "environments", multiple=True, help="Reconcile only this environment (repeatable)  [default: all]")
@click.option("--model-url", help="Point gates, deploys and verifies at this OpenAI-compatible base URL (e.g. a stub).")
@click.option("--interval", type=click.FloatRange(min=0.05), default=60.0, show_default=True, help="Seconds between polls of the repository.")
@click.option("--host", default="0.0.0.0", show_default=True, help="Interface of /healthz, /readyz, /metrics and /webhook/github.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="Port of the endpoints (0: any free port).")
@click.option("--lease-namespace", help=f"Namespace of the Lease  [default: $POD_NAMESPACE, the pod's namespace, or {DEFAULT_NAMESPACE}]")
@click.option("--lease-name", default="llmops-controller", show_default=True, help="Name of the Lease the replicas elect a leader on.")
@click.option("--identity", help="This replica's name in the Lease  [default: $POD_NAME, or host name + random suffix]")
@click.option("--lease-duration", type=click.IntRange(min=1), default=15, show_default=True, help="Seconds a Lease stays valid without renewal.")
@click.option("--renew-deadline", type=click.FloatRange(min=0.01), default=10.0, show_default=True, help="Seconds within which the leader must renew, or it stops acting.")
@click.option("--retry-period", type=click.FloatRange(min=0.01), default=2.0, show_default=True, help="Seconds between attempts to acquire or renew.")
@click.option("--no-leader-election", is_flag=True, help="Act without a Lease (one replica only, or outside a cluster).")
@click.option("--kubeconfig", type=click.Path(dir_okay=False, path_type=Path), help="kubeconfig for the Lease and Events  [default: in-cluster, else KUBECONFIG]")
@click.option("--context", "kube_context", help="kubeconfig context to use.")
@click.option("--webhook-secret-env", default="LLMOPS_WEBHOOK_SECRET", show_default=True, metavar="NAME", help="Environment variable holding the GitHub webhook secret (unset: webhook off).")
@click.option("--webhook-secret-file", type=click.Path(dir_okay=False, path_type=Path), help="Read the webhook secret from this file instead.")
@click.option("--backoff-base", type=click.FloatRange(min=0.01), default=5.0, show_default=True, help="Seconds before the first retry of a failing app; doubles per failure.")
@click.option("--backoff-max", type=click.FloatRange(min=0.01), default=600.0, show_default=True, help="Longest wait between retries of a failing app.")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="Least severe JSON log line written to stderr.",
)
@click.option("--pass-fn", hidden=True, help="MODULE:ATTR of a pass function (tests, custom reconcilers).")
@click.pass_context
def controller(
    ctx: click.Context,
    repo: str | None,
    branch: str | None,
    workdir: Path | None,
    environments: tuple[str, ...],
    model_url: str | None,
    interval: float,
    host: str,
    port: int,
    lease_namespace: str | None,
    lease_name: str,
    identity: str | None,
    lease_duration: int,
    renew_deadline: float,
    retry_period: float,
    no_leader_election: bool,
    kubeconfig: Path | None,
    kube_context: str | None,
    webhook_secret_env: str,
    webhook_secret_file: Path | None,
    backoff_base: float,
    backoff_max: float,
    log_level: str,
    pass_fn: str | None,
) -> None:
    """Reconcile every environment continuously: poll the repository every --interval,
    run a pass at once on a GitHub push (POST /webhook/github, HMAC-signed), act only
    while holding the Lease, back off per failing app, and serve /healthz, /readyz and
    /metrics. Stop with SIGTERM: the pass in flight finishes and the Lease is released.

    `llmops controller manifests` prints the objects that install it in a cluster.
    """
    if ctx.invoked_subcommand is not None:
        return
    from llmops.controller.events import EventRecorder, Regarding
    from llmops.controller.leader import Election, ElectionConfig, LeaderElector, NoElection
    from llmops.controller.loop import Backoff
    from llmops.controller.run import Controller, ControllerOptions
    from llmops.controller.webhook import load_secret
    from llmops.runtime.logs import JsonLogger

    if repo is None and pass_fn is None:
        raise UsageError("llmops controller needs --repo PATH|URL (the llmops git repository)")
    if model_url is not None and not model_url.startswith(("http://", "https://")):
        raise UsageError(f"--model-url must be an http(s) URL, got {model_url!r}")
    logger = JsonLogger(level=log_level)
    secret = load_secret(webhook_secret_env, webhook_secret_file)
    envs = frozenset(environments) or None
    if pass_fn is not None:
        run_pass = _load_pass_fn(pass_fn)
    else:
        assert repo is not None
        run_pass = reconciler_pass(repo, branch=branch, workdir=workdir, model_url=model_url)

    namespace = lease_namespace or _default_lease_namespace()
    election: Election
    events = None
    if no_leader_election:
        election = NoElection()
    else:
        from llmops.adapters.kubelease import KubeEvents, KubeLeases, api_client

        config = ElectionConfig(
            identity=identity or _default_identity(),
            lease_duration=lease_duration,
            renew_deadline=renew_deadline,
            retry_period=retry_period,
        )
        client = api_client(kubeconfig, kube_context)
        timeout = (min(2.0, renew_deadline / 2), max(0.1, renew_deadline / 2))
        election = LeaderElector(
            KubeLeases(client, namespace, lease_name, timeout=timeout), config, logger=logger
        )
        events = EventRecorder(
            KubeEvents(client).create,
            Regarding(namespace=namespace, name=lease_name),
            host=config.identity,
            logger=logger,
        )
    options = ControllerOptions(
        interval=interval,
        host=host,
        port=port,
        environments=envs,
        backoff=Backoff(base=backoff_base, cap=max(backoff_base, backoff_max)),
        branch=branch,
    )
    Controller(
        run_pass, election, options, secret=secret, events=events, logger=logger
    ).run_forever()


def reconciler_pass(
    repo: str,
    *,
    branch: str | None,
    workdir: Path | None,
    model_url: str | None = None,
) -> PassFn:
    """The ``PassFn`` that runs ``llmops.ops.reconcile.reconcile_pass`` on the repository
    (cloned first into ``workdir`` when ``repo`` is a URL; later passes fetch it)."""
    try:
        from llmops.ops.reconcile import ReconcileOptions, ReconcileWorld, reconcile_pass
    except ImportError as exc:  # pragma: no cover - a partial build
        raise UsageError("reconciler not available: llmops.ops.reconcile is missing") from exc
    from llmops.adapters.gitclone import default_workdir, ensure_clone, is_url
    from llmops.domain.errors import SourceError

    if is_url(repo):
        dest = workdir or default_workdir(repo, Path.home() / ".cache" / "llmops" / "controller")
        root = ensure_clone(repo, dest, branch)
    else:
        root = Path(repo)
        if not root.is_dir():
            raise SourceError(f"--repo {repo}: no such directory (give a path or a clone URL)")
    world = ReconcileWorld()

    def run(request: PassRequest) -> PassOutcome:
        # Apps backing off (request.exclude) keep what runs and are retried on their own
        # (request.apps) when their backoff ends; a lost lease stops the pass between
        # two apps' steps.
        world.should_stop = request.should_stop
        results = []
        for env in sorted(request.environments) if request.environments else [None]:
            if request.should_stop():
                break
            options = ReconcileOptions(
                env=env, model_url=model_url, apps=request.apps, exclude=request.exclude
            )
            results.append(reconcile_pass(root, options, world))
        return outcome_of(results)

    return run


def outcome_of(results: list[Any]) -> PassOutcome:
    """The controller's ``PassOutcome`` for the reconciler's ``PassResult`` values
    (``llmops.reconcile.result``): environments, failed apps, and what the steps did."""
    from llmops.domain.errors import ExternalError

    envs: list[EnvResult] = []
    failures: list[AppFailure] = []
    promotions: list[Promotion] = []
    rollbacks: list[Rollback] = []
    gates: list[GateFailure] = []
    commit = None
    for result in results:
        if result.error:
            raise ExternalError(result.error)
        commit = result.commit or commit
        for stage in result.stages:
            failed_before = len(failures)
            for app in stage.apps:
                _app_records(app, stage.env, failures, promotions, rollbacks, gates)
            ok = stage.error is None and len(failures) == failed_before
            envs.append(EnvResult(stage.env, ok, stage.error or ""))
    return PassOutcome(
        environments=tuple(envs),
        app_failures=tuple(failures),
        promotions=tuple(promotions),
        rollbacks=tuple(rollbacks),
        gate_failures=tuple(gates),
        commit=commit,
    )


def _app_records(
    app: Any,
    env: str,
    failures: list[AppFailure],
    promotions: list[Promotion],
    rollbacks: list[Rollback],
    gates: list[GateFailure],
) -> None:
    """Append what one ``AppResult`` says: a failure, promotions, a rollback, gate failures."""
    from llmops.reconcile import conditions as c

    # a rollout that rolled back is handled by the reconciler (pin back, hold): no backoff
    failed = [s for s in app.steps if s.status == "failed" and s.reason != c.ROLLED_BACK]
    if app.error is not None or failed or app.phase == "Failed":
        message = app.error or (failed[0].message or failed[0].reason if failed else "failed")
        failures.append(AppFailure(app.app, env, message))
    release = app.desired or ""
    rolled_back = False
    for step in app.steps:
        if step.step == "promote" and step.status == "done" and step.reason in (
            c.COMMITTED, c.PROPOSED, c.APPROVED_LOCALLY
        ):
            promotions.append(Promotion(app.app, env, release, via=step.message))
        elif step.step == "gate" and step.reason == c.GATE_FAILED:
            gates.append(GateFailure(app.app, env, release, step.message))
        elif not rolled_back and (
            (step.step == "apply" and step.reason == c.ROLLED_BACK)
            or (step.step == "rollback" and step.status == "done")
        ):
            rolled_back = True
            rollbacks.append(Rollback(app.app, env, app.live or "", app.desired, step.message))


@controller.command("manifests")
@click.option("--repo", metavar="URL", help="The clone URL of the repository the controller reconciles.")
@click.option(
    "--path",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    show_default=True,
    help="A local checkout, read for the namespaces of its kubernetes environments.",
)
@click.option("--namespace", default=DEFAULT_NAMESPACE, show_default=True, help="Namespace of the controller (and its Lease).")
@click.option("--image", help="The controller image  [default: llmops/controller:<version>]")
@click.option(
    "--target-namespace",
    "target_namespaces",
    multiple=True,
    help="A namespace the controller deploys to (repeatable)  [default: the kubernetes environments under --path]",
)
@click.option("--replicas", type=click.IntRange(min=1), default=2, show_default=True, help="Controller replicas (one leads).")
@click.option("--interval", type=click.FloatRange(min=0.05), default=60.0, show_default=True, help="Seconds between polls.")
@click.option("--branch", help="The branch to reconcile.")
@click.option("--env", "environments", multiple=True, help="Reconcile only this environment (repeatable).")
@click.option("--lease-name", default="llmops-controller", show_default=True, help="Name of the Lease.")
def manifests(
    repo: str | None,
    path: Path,
    namespace: str,
    image: str | None,
    target_namespaces: tuple[str, ...],
    replicas: int,
    interval: float,
    branch: str | None,
    environments: tuple[str, ...],
    lease_name: str,
) -> None:
    """Print the objects that install the controller as one YAML stream: Namespaces,
    ServiceAccount, least-privilege Roles and RoleBindings, Deployment and Service.

    Apply with: llmops controller manifests --repo URL | kubectl apply -f -
    (then create the Secret llmops-webhook with key 'secret' to turn the webhook on).
    """
    import yaml

    from llmops.controller.manifests import InstallOptions, render
    from llmops.domain.ids import dns_label_problem

    if not repo:
        raise UsageError(
            "llmops controller manifests needs --repo URL (the clone URL the controller reconciles)"
        )
    targets = tuple(target_namespaces) or _namespaces_of(path, environments)
    for name in (namespace, *targets):
        problem = dns_label_problem(name)
        if problem:
            raise UsageError(f"namespace {name!r}: {problem}")
    if lease_name and dns_label_problem(lease_name):
        raise UsageError(f"--lease-name: {dns_label_problem(lease_name)}")
    options = InstallOptions(
        repo=repo,
        namespace=namespace,
        target_namespaces=targets,
        replicas=replicas,
        interval=interval,
        lease_name=lease_name,
        branch=branch,
        environments=tuple(environments),
    )
    if image:
        options = dataclasses.replace(options, image=image)
    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:  # plain YAML: no &anchors / *aliases
            return True

    documents = render(options)
    text = yaml.dump_all(documents, Dumper=Dumper, sort_keys=False, explicit_start=True)
    click.echo(text, nl=False)


def _namespaces_of(path: Path, environments: tuple[str, ...]) -> tuple[str, ...]:
    """The namespaces of the kubernetes environments of the repository at ``path``."""
    if not (path / "environments").is_dir():
        raise UsageError(
            f"{path} is not an llmops repository: name the namespaces the controller deploys "
            "to with --target-namespace, or point --path at a checkout"
        )
    from llmops import api

    loaded = api.load(path)
    namespaces = sorted(
        {
            source.environment.spec.target.namespace
            for name, source in loaded.environments.items()
            if source.environment.spec.target.kind == "kubernetes"
            and source.environment.spec.target.namespace
            and (not environments or name in environments)
        }
    )
    if not namespaces:
        raise UsageError(
            f"{path} has no kubernetes environment: name the namespaces with --target-namespace"
        )
    return tuple(namespaces)
