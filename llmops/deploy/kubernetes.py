"""The ``kubernetes`` deploy target: blue/green per app in one namespace.

``KubernetesTarget`` implements the ``Target`` protocol (``llmops.deploy.target``) over
``llmops.adapters.kube.KubeClient``; used by ``llmops.ops`` (plan, apply, rollback) and
``llmops.reconcile``. Objects come from ``llmops.deploy.k8s`` (names and labels are its
convention) and comparisons from ``llmops.deploy.objdiff``.

What runs is read from the cluster, never from local state: every object llmops applied
carries ``app.kubernetes.io/managed-by=llmops`` and ``llmops.dev/environment=<env>``. The
stable ``Service/<app>`` selects the active colour; that colour's Deployment carries the
release and fingerprint annotations and, in ``llmops.dev/desired``, the ``DesiredApp`` it
was rendered from (plain variables and secret *references* only), so ``live()`` can render
it again and report drift: fields llmops sets that someone changed by hand.

Apply, per app (apps in parallel, one app's failure never stops another):

1. server-side apply the inactive colour's ConfigMap, Deployment and Service;
2. wait for its rollout (``timeout``), then ``verify`` it at
   ``http://<app>-<colour>.<namespace>.svc:<port>``;
3. server-side apply the stable Service (and HPA, PDB) pointing at the new colour: the
   traffic switch;
4. after ``grace`` seconds, scale the old colour to 0 (kept for a fast switch back).

If the rollout times out or verify fails, the stable Service is not touched, the new
colour is scaled to 0 and the outcome is ``rolled-back`` (``failed`` when no colour served
before). Apps no longer desired are pruned: every object they own is deleted. Nothing is
written before the cluster answered a read in the namespace.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llmops.deploy import k8s
from llmops.deploy.bluegreen import check_desired, check_plan
from llmops.deploy.objdiff import diff_object, object_key, object_name, plan_objects
from llmops.deploy.target import Verify, VerifyResult
from llmops.domain.deploy import (
    APP_LABEL,
    COLOUR_LABEL,
    ENV_LABEL,
    FINGERPRINT_ANNOTATION,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    RELEASE_ANNOTATION,
    ApplyResult,
    Change,
    Colour,
    Deployed,
    DeployPlan,
    DesiredApp,
    LiveApp,
    SecretEnv,
    TargetKind,
    other_colour,
)
from llmops.domain.errors import ExternalError, LlmopsError

if TYPE_CHECKING:
    from llmops.adapters.kube import KubeClient

JSON = dict[str, Any]

#: on the Deployment: the DesiredApp it was rendered from (canonical JSON, no secret values)
DESIRED_ANNOTATION = "llmops.dev/desired"
#: the kinds llmops applies, in the order prune deletes them (traffic first)
OWNED_KINDS = (
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "Service",
    "Deployment",
    "ConfigMap",
)
_COLOURS: tuple[Colour, ...] = ("blue", "green")


@dataclass(frozen=True, slots=True)
class KubeLiveApp(LiveApp):
    """A ``LiveApp`` plus the live objects it was read from (for a pure ``plan``)."""

    objects: tuple[Mapping[str, Any], ...] = ()


# --- the DesiredApp annotation ----------------------------------------------------------


def desired_to_json(desired: DesiredApp) -> str:
    body = {
        "app": desired.app,
        "env": desired.env,
        "release": desired.release,
        "image": desired.image,
        "replicas": desired.replicas,
        "port": desired.port,
        "cpu": desired.cpu,
        "memory": desired.memory,
        "env_vars": [list(p) for p in desired.env_vars],
        "secret_env": [
            {
                k: v
                for k, v in (
                    ("name", s.name),
                    ("secret_name", s.secret_name),
                    ("secret_key", s.secret_key),
                    ("from_env", s.from_env),
                    ("file", s.file),
                )
                if v is not None
            }
            for s in desired.secret_env
        ],
        "autoscaling": list(desired.autoscaling) if desired.autoscaling else None,
        "min_available": desired.min_available,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def desired_from_json(text: str | None) -> DesiredApp | None:
    """The DesiredApp an annotation holds; None when absent or unreadable."""
    if not text:
        return None
    try:
        body = json.loads(text)
        scaling = body.get("autoscaling")
        return DesiredApp(
            app=str(body["app"]),
            env=str(body["env"]),
            release=str(body["release"]),
            image=body.get("image"),
            replicas=int(body["replicas"]),
            port=int(body["port"]),
            cpu=str(body["cpu"]),
            memory=str(body["memory"]),
            env_vars=tuple((str(k), str(v)) for k, v in body.get("env_vars") or ()),
            secret_env=tuple(SecretEnv(**s) for s in body.get("secret_env") or ()),
            autoscaling=(int(scaling[0]), int(scaling[1]), int(scaling[2])) if scaling else None,
            min_available=body.get("min_available"),
        )
    except (ValueError, KeyError, TypeError, IndexError):
        return None


# --- pure helpers ---------------------------------------------------------------------


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return _meta(obj).get("labels") or {}


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return _meta(obj).get("annotations") or {}


def _colour(value: object) -> Colour | None:
    return "blue" if value == "blue" else "green" if value == "green" else None


def render_colour(desired: DesiredApp, namespace: str, colour: Colour) -> list[JSON]:
    """``k8s.render_colour`` plus the desired-app annotation on the Deployment."""
    objects = k8s.render_colour(desired, namespace, colour)
    for obj in objects:
        if obj["kind"] == "Deployment":
            obj["metadata"].setdefault("annotations", {})[DESIRED_ANNOTATION] = desired_to_json(
                desired
            )
    return objects


def rollout_judge(deployment: Mapping[str, Any] | None) -> bool:
    """Whether a Deployment is rolled out (``kubectl rollout status`` rules)."""
    if deployment is None:
        return False
    meta, spec, status = (
        _meta(deployment),
        deployment.get("spec") or {},
        deployment.get("status") or {},
    )
    if int(meta.get("generation", 0)) > int(status.get("observedGeneration", 0)):
        return False
    want = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas", 0))
    return (
        updated >= want
        and int(status.get("replicas", 0)) <= updated
        and int(status.get("availableReplicas", 0)) >= updated
        and want > 0
    )


def _colour_of_changes(changes: Sequence[Change], app: str) -> Colour | None:
    for change in changes:
        for colour in _COLOURS:
            if change.object == f"Deployment/{k8s.colour_name(app, colour)}":
                return colour
    return None


class KubernetesTarget:
    """One environment in one namespace of a cluster."""

    kind: TargetKind = "kubernetes"

    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        env: str,
        *,
        poll: float = 1.0,
        workers: int = 4,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.env = env
        self._poll = poll
        self._workers = max(1, workers)
        self._sleep = sleep

    @property
    def selector(self) -> str:
        return f"{MANAGED_BY_LABEL}={MANAGED_BY},{ENV_LABEL}={self.env}"

    def endpoint(self, app: str, port: int, colour: Colour | None = None) -> str:
        name = k8s.colour_name(app, colour) if colour else app
        return f"http://{name}.{self.namespace}.svc:{port}"

    # --- live -----------------------------------------------------------------------

    def _owned(self, app: str | None = None) -> list[JSON]:
        selector = self.selector + (f",{APP_LABEL}={app}" if app else "")
        found: list[JSON] = []
        for kind in OWNED_KINDS:
            found += self.client.list(kind, self.namespace, selector)
        return found

    def live(self) -> dict[str, KubeLiveApp]:
        """Every app llmops runs in this environment, read from the cluster."""
        by_app: dict[str, list[JSON]] = {}
        for obj in self._owned():
            app = _labels(obj).get(APP_LABEL)
            if app:
                by_app.setdefault(app, []).append(obj)
        return {app: self._live_app(app, objs) for app, objs in sorted(by_app.items())}

    def _live_app(self, app: str, objects: list[JSON]) -> KubeLiveApp:
        index = {object_key(o): o for o in objects}
        stable = index.get(("Service", self.namespace, app))
        colour = _colour(((stable or {}).get("spec") or {}).get("selector", {}).get(COLOUR_LABEL))
        deployment = (
            index.get(("Deployment", self.namespace, k8s.colour_name(app, colour)))
            if colour
            else None
        )
        if stable is None or colour is None or deployment is None:
            return KubeLiveApp(app, self.env, None, None, None, False, objects=tuple(objects))
        notes = _annotations(deployment)
        release, fingerprint = notes.get(RELEASE_ANNOTATION), notes.get(FINGERPRINT_ANNOTATION)
        ports = (stable.get("spec") or {}).get("ports") or [{}]
        port = ports[0].get("port")
        drift: list[str] = []
        desired = desired_from_json(notes.get(DESIRED_ANNOTATION))
        if desired is not None and desired.fingerprint == fingerprint:
            rendered = render_colour(desired, self.namespace, colour) + k8s.render_stable(
                desired, self.namespace, colour
            )
            for want in rendered:
                have = index.get(object_key(want))
                if have is None:
                    drift.append(f"{object_name(want)}: missing")
                    continue
                drift += [f"{object_name(want)} {line}" for line in diff_object(want, have)]
        elif fingerprint is not None:
            drift.append(
                f"Deployment/{k8s.colour_name(app, colour)}: the {DESIRED_ANNOTATION} annotation is missing or altered"
            )
        return KubeLiveApp(
            app,
            self.env,
            release,
            fingerprint,
            colour,
            rollout_judge(deployment),
            endpoint=self.endpoint(app, int(port)) if port else None,
            drift=tuple(drift),
            objects=tuple(objects),
        )

    # --- plan -----------------------------------------------------------------------

    def plan(self, desired: Sequence[DesiredApp], live: Mapping[str, LiveApp]) -> DeployPlan:
        """Desired vs live, pure: an app whose fingerprint matches and has no drift is
        ``unchanged``; otherwise its inactive colour and the stable objects are planned
        (create/update with diff lines); apps live but not desired are deleted."""
        names = check_desired(self.env, desired)
        changes: list[Change] = []
        for d in desired:
            current = live.get(d.app)
            objects = tuple(current.objects) if isinstance(current, KubeLiveApp) else ()
            if (
                current is not None
                and current.colour
                and current.fingerprint == d.fingerprint
                and not current.drift
            ):
                active = render_colour(d, self.namespace, current.colour) + k8s.render_stable(
                    d, self.namespace, current.colour
                )
                changes += [Change("unchanged", d.app, object_name(o)) for o in active]
                continue
            colour = (
                other_colour(current.colour) if current is not None and current.colour else "blue"
            )
            wanted = render_colour(d, self.namespace, colour) + k8s.render_stable(
                d, self.namespace, colour
            )
            keys = {object_key(o) for o in wanted}
            found = plan_objects(
                wanted, [o for o in objects if object_key(o) in keys], env=self.env
            )
            notes = tuple(f"! drift: {line}" for line in (current.drift if current else ()))
            if notes:
                found = (
                    Change(found[0].kind, found[0].app, found[0].object, found[0].diff + notes),
                    *found[1:],
                )
            changes += found
        for app in sorted(set(live) - set(names)):
            current = live[app]
            objects = tuple(current.objects) if isinstance(current, KubeLiveApp) else ()
            lines = (f"- release: {current.release}",) if current.release else ()
            if not objects:
                changes.append(Change("delete", app, f"app {app}", lines))
            for obj in sorted(objects, key=object_key):
                changes.append(Change("delete", app, object_name(obj), lines))
        return DeployPlan(self.env, "kubernetes", tuple(desired), tuple(changes))

    # --- apply ----------------------------------------------------------------------

    def apply(
        self,
        plan: DeployPlan,
        *,
        verify: Verify | None = None,
        timeout: float = 120.0,
        grace: float = 0.0,
    ) -> ApplyResult:
        """Apply ``plan`` once (see the module docstring). Raises ``ExternalError`` before
        any write when the cluster cannot be read; per-app failures are outcomes."""
        desired = check_plan(plan, self.env)
        self.client.check(self.namespace)
        apps = list(dict.fromkeys(c.app for c in plan.changes))
        apps += [a for a in desired if a not in apps]

        def one(app: str) -> Deployed:
            changes = plan.for_app(app)
            try:
                if app not in desired:
                    return self._prune(app)
                if changes and all(c.kind == "unchanged" for c in changes):
                    return self._unchanged(desired[app], changes)
                return self._deploy(desired[app], verify, timeout, grace)
            except LlmopsError as exc:
                return Deployed(app, self.env, None, "failed", message=str(exc))

        with ThreadPoolExecutor(
            min(self._workers, max(1, len(apps))), thread_name_prefix="llmops-kube"
        ) as pool:
            results = tuple(pool.map(one, apps))
        return ApplyResult(self.env, "kubernetes", results)

    def _unchanged(self, desired: DesiredApp, changes: Sequence[Change]) -> Deployed:
        colour = _colour_of_changes(changes, desired.app)
        return Deployed(
            desired.app,
            self.env,
            desired.release,
            "unchanged",
            colour=colour,
            endpoint=self.endpoint(desired.app, desired.port),
            previous=desired.release,
        )

    def _event(
        self, obj: Mapping[str, Any] | None, reason: str, message: str, warning: bool = False
    ) -> None:
        """Best effort: an Event is a courtesy to ``kubectl describe``, never a failure."""
        if obj is None:
            return
        with contextlib.suppress(ExternalError):
            self.client.create_event(obj, reason, message, "Warning" if warning else "Normal")

    def _deploy(
        self, desired: DesiredApp, verify: Verify | None, timeout: float, grace: float
    ) -> Deployed:
        app, ns = desired.app, self.namespace
        stable = self.client.get("Service", app, ns)
        old = _colour(((stable or {}).get("spec") or {}).get("selector", {}).get(COLOUR_LABEL))
        old_deployment = (
            self.client.get("Deployment", k8s.colour_name(app, old), ns) if old else None
        )
        previous = _annotations(old_deployment).get(RELEASE_ANNOTATION) if old_deployment else None
        old_serves = old_deployment is not None and rollout_judge(old_deployment)
        colour: Colour = other_colour(old) if old else "blue"
        name = k8s.colour_name(app, colour)
        applied: JSON | None = None
        try:
            for obj in render_colour(desired, ns, colour):
                live = self.client.apply(obj)
                if obj["kind"] == "Deployment":
                    applied = live
            if (
                desired.autoscaling is not None
                and applied is not None
                and not (applied.get("spec") or {}).get("replicas")
            ):
                # a colour retired to 0 replicas: the HPA cannot scale up from 0
                applied = self.client.scale(name, ns, desired.autoscaling[0]) or applied
            state = self.client.wait_rollout(name, ns, timeout, poll=self._poll)
            if not state.ready:
                return self._roll_back(
                    desired,
                    colour,
                    old if old_serves else None,
                    previous,
                    applied,
                    f"Deployment/{name} {state.message}",
                )
            if verify is not None:
                try:
                    result = verify(desired, self.endpoint(app, desired.port, colour))
                except Exception as exc:  # a broken check must not move traffic
                    result = VerifyResult(False, f"verify raised {type(exc).__name__}: {exc}")
                if not result.ok:
                    return self._roll_back(
                        desired,
                        colour,
                        old if old_serves else None,
                        previous,
                        applied,
                        f"verify of {self.endpoint(app, desired.port, colour)} failed: "
                        f"{result.message or 'no reason given'}",
                    )
        except LlmopsError as exc:
            return self._roll_back(
                desired, colour, old if old_serves else None, previous, applied, str(exc)
            )
        try:
            for obj in k8s.render_stable(desired, ns, colour):
                self.client.apply(obj)
        except LlmopsError as exc:
            # both colours run: the next apply converges (the new colour is verified)
            return Deployed(
                app,
                self.env,
                previous,
                "failed",
                colour=old,
                previous=previous,
                message=f"switching traffic to {colour} failed: {exc}; {name} and the old colour "
                "both keep running until the next apply",
            )
        self._event(applied, "Deployed", f"{desired.release} serves Service/{app}")
        notes: list[str] = []
        if old is not None:
            if grace > 0:
                self._sleep(grace)
            try:
                self.client.scale(k8s.colour_name(app, old), ns, 0)
            except ExternalError as exc:
                notes.append(f"Deployment/{k8s.colour_name(app, old)} was not scaled to 0: {exc}")
        message = "; ".join([f"Service/{app} selects {colour} (Deployment/{name})", *notes])
        return Deployed(
            app,
            self.env,
            desired.release,
            "deployed",
            colour=colour,
            endpoint=self.endpoint(app, desired.port),
            message=message,
            previous=previous,
        )

    def _roll_back(
        self,
        desired: DesiredApp,
        colour: Colour,
        serving: Colour | None,
        previous: str | None,
        applied: Mapping[str, Any] | None,
        reason: str,
    ) -> Deployed:
        """Scale the new colour to 0; the stable Service still selects ``serving``."""
        app, name = desired.app, k8s.colour_name(desired.app, colour)
        try:
            if (
                applied is not None
                or self.client.get("Deployment", name, self.namespace) is not None
            ):
                self.client.scale(name, self.namespace, 0)
        except ExternalError as exc:
            reason += f"; Deployment/{name} was not scaled to 0: {exc}"
        self._event(applied, "RolledBack", reason[:1000], warning=True)
        if serving is None:
            return Deployed(
                app,
                self.env,
                previous,
                "failed",
                message=f"{reason}; nothing served before",
                previous=previous,
            )
        return Deployed(
            app,
            self.env,
            previous,
            "rolled-back",
            colour=serving,
            endpoint=self.endpoint(app, desired.port),
            message=f"{reason}; Service/{app} still selects {serving} ({previous} keeps serving)",
            previous=previous,
        )

    def _prune(self, app: str) -> Deployed:
        objects = self._owned(app)
        release = next(
            (
                _annotations(o).get(RELEASE_ANNOTATION)
                for o in objects
                if o.get("kind") == "Deployment"
                and ((o.get("spec") or {}).get("replicas") or 0) > 0
            ),
            None,
        )
        deleted = [
            object_name(o)
            for o in objects
            if self.client.delete(str(o["kind"]), _meta(o)["name"], self.namespace)
        ]
        message = f"deleted {', '.join(deleted)}" if deleted else "nothing left to delete"
        return Deployed(app, self.env, None, "pruned", message=message, previous=release)
