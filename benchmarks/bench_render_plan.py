"""Render + plan speed for a large environment (issue: deploy core).

Generates a repository of N apps (default 300; every third with an HPA and a
PodDisruptionBudget, every fifth with an API key from a Kubernetes Secret), builds each
app's release bundle, renders every app and writes a recorded live state: a JSON list of
the rendered objects with what an API server adds (uid, resourceVersion, managedFields,
status, defaulted fields, canonical quantities), about 5% of them changed by hand, and a
leftover old colour for a few apps (to be pruned).

A hand edit of ``replicas`` on a Deployment an HPA manages is not a difference (the HPA
owns that field), so the plan can show a few updates fewer than the objects edited.

Then measures, as the median of repeated runs: desired state of every app
(``desired_app``) + ``render_app`` + ``plan_objects`` against that live state
(target ≤ 1 s). Loading the repository and building bundles are not timed (they are
the release step, done once per commit).
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from genrepo import generate  # noqa: E402

from llmops import api  # noqa: E402
from llmops.deploy.desired import desired_app  # noqa: E402
from llmops.deploy.images import image_ref  # noqa: E402
from llmops.deploy.k8s import render_app  # noqa: E402
from llmops.deploy.objdiff import plan_objects  # noqa: E402
from llmops.domain.models import Environment  # noqa: E402
from llmops.releases.bundle import Bundle, build_bundle  # noqa: E402

NAMESPACE = "llm-prod"
SERVING = (
    "  serving:\n"
    "    replicas: 2\n"
    "    resources: {cpu: 500m, memory: 512Mi}\n"
    "    autoscaling: {minReplicas: 2, maxReplicas: 8, targetCpuUtilization: 70}\n"
    "    minAvailable: 1\n"
    "    env: {LOG_FORMAT: json}\n"
)


def make_repo(root: Path, apps: int) -> Path:
    repo = generate(root, apps, cases=2)
    for index in range(0, apps, 3):
        app = repo / "manifests" / f"app-{index:04d}" / "app.yaml"
        app.write_text(app.read_text() + SERVING)
    return repo


def environment(apps: int) -> Environment:
    overrides: dict[str, Any] = {}
    for index in range(0, apps, 5):
        overrides[f"app-{index:04d}"] = {
            "replicas": 3,
            "model": {
                "baseUrl": "http://vllm.llm-prod.svc:8000/v1",
                "apiKey": {"secret": {"name": "openai", "key": "api-key"}},
            },
        }
    return Environment.model_validate(
        {
            "apiVersion": "llmops.dev/v1",
            "kind": "Environment",
            "metadata": {"name": "prod"},
            "spec": {
                "target": {"kind": "kubernetes", "namespace": NAMESPACE},
                "registry": "127.0.0.1:5000/llm-apps",
                "overrides": overrides,
            },
        }
    )


def serverish(obj: dict[str, Any], serial: int) -> dict[str, Any]:
    """``obj`` as an API server would return it after applying it."""
    live = copy.deepcopy(obj)
    meta = live["metadata"]
    meta.update(
        {
            "uid": f"00000000-0000-4000-8000-{serial:012d}",
            "resourceVersion": str(100000 + serial),
            "generation": 1,
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "managedFields": [
                {"manager": "llmops", "operation": "Apply", "apiVersion": obj["apiVersion"]}
            ],
        }
    )
    live["status"] = {"observedGeneration": 1}
    if live["kind"] == "Deployment":
        live["spec"]["progressDeadlineSeconds"] = 600
        pod = live["spec"]["template"]["spec"]
        pod.update({"dnsPolicy": "ClusterFirst", "restartPolicy": "Always"})
        for container in pod["containers"]:
            container["terminationMessagePath"] = "/dev/termination-log"
            container["terminationMessagePolicy"] = "File"
            for probe in ("livenessProbe", "readinessProbe"):
                container[probe]["successThreshold"] = 1
                container[probe]["httpGet"]["scheme"] = "HTTP"
        live["status"].update({"replicas": 2, "readyReplicas": 2, "availableReplicas": 2})
    elif live["kind"] == "Service":
        live["spec"].update(
            {"clusterIP": f"10.0.{serial // 250}.{serial % 250}", "sessionAffinity": "None"}
        )
    return live


def hand_edit(obj: dict[str, Any], rng: random.Random) -> None:
    """One change a person might make with kubectl."""
    kind = obj["kind"]
    if kind == "Deployment":
        containers = obj["spec"]["template"]["spec"]["containers"]
        choice = rng.choice(["replicas", "image", "cpu"])
        if choice == "replicas":
            obj["spec"]["replicas"] = obj["spec"].get("replicas", 1) + 4
        elif choice == "image":
            containers[0]["image"] = containers[0]["image"].rsplit(":", 1)[0] + ":hotfix"
        else:
            containers[0]["resources"]["requests"]["cpu"] = "2"
    elif kind == "ConfigMap":
        obj["data"]["DEBUG"] = "1"
        obj["data"]["LLMOPS_ENVIRONMENT"] = "staging"
    elif kind == "Service":
        obj["spec"]["selector"]["llmops.dev/colour"] = "green"
    else:
        obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] = "kubectl"


def render_and_plan(
    bundles: list[Bundle], env: Environment, live: list[dict[str, Any]]
) -> tuple[int, Counter[str]]:
    desired_objects: list[dict[str, Any]] = []
    for bundle in bundles:
        desired = desired_app(bundle, env, image_ref(env, bundle.release_id))
        desired_objects += render_app(desired, NAMESPACE, "blue")
    changes = plan_objects(desired_objects, live, env="prod")
    return len(desired_objects), Counter(c.kind for c in changes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--apps", type=int, default=300)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--changed", type=float, default=0.05, help="share of live objects edited")
    args = parser.parse_args()
    rng = random.Random(7)

    with tempfile.TemporaryDirectory() as tmp:
        repo = api.load(make_repo(Path(tmp) / "repo", args.apps))
        bundles = [build_bundle(repo.apps[name], Path(repo.root)) for name in sorted(repo.apps)]
        env = environment(args.apps)
        count, _ = render_and_plan(bundles, env, [])
        rendered: list[dict[str, Any]] = []
        for bundle in bundles:
            desired = desired_app(bundle, env, image_ref(env, bundle.release_id))
            rendered += render_app(desired, NAMESPACE, "blue")
        live = [serverish(obj, serial) for serial, obj in enumerate(rendered)]
        edited = rng.sample(range(len(live)), round(len(live) * args.changed))
        for index in edited:
            hand_edit(live[index], rng)
        # a few apps still have their old colour around: it must be pruned
        for bundle in bundles[:10]:
            desired = desired_app(bundle, env, image_ref(env, bundle.release_id))
            stale = render_app(desired, NAMESPACE, "green")[:3]
            live += [serverish(obj, 90000 + i) for i, obj in enumerate(stale)]
        live_file = Path(tmp) / "live.json"
        live_file.write_text(json.dumps(live))
        size = live_file.stat().st_size

        mark = time.perf_counter()
        recorded = json.loads(live_file.read_text())
        load_s = time.perf_counter() - mark
        samples = []
        kinds: Counter[str] = Counter()
        for _ in range(args.runs):
            mark = time.perf_counter()
            count, kinds = render_and_plan(bundles, env, recorded)
            samples.append(time.perf_counter() - mark)

    median = statistics.median(samples)
    print(
        f"{args.apps} apps: {count} desired objects, {len(recorded)} live objects "
        f"({size / 1e6:.1f} MB JSON, loaded in {load_s * 1000:.0f} ms), {len(edited)} edited by hand"
    )
    print(f"plan: {dict(sorted(kinds.items()))}")
    print(f"{'measure':34} {'median':>9} {'min':>9} {'target':>8}")
    print(f"{'render + plan':34} {median:8.3f}s {min(samples):8.3f}s {'1.00s':>8}")
    out = HERE / "results" / "render_plan.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "apps": args.apps,
                "runs": args.runs,
                "desired_objects": count,
                "live_objects": len(recorded),
                "edited": len(edited),
                "plan": dict(sorted(kinds.items())),
                "results": {
                    "render + plan": {"median_s": median, "min_s": min(samples), "target_s": 1.0}
                },
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
