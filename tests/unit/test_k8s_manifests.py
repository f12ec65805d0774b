"""deploy/k8s holds valid Kubernetes objects (checked offline against the API schemas that
the kubernetes-validate package ships) describing the cluster operators expect: every
service with native gRPC probes, gateways and ingests autoscaled and reached through
headless Services, rankers publishing their pod address, secrets from a Secret only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
# The oldest Kubernetes the manifests promise to work on (gRPC probes are GA since 1.27,
# autoscaling/v2 since 1.23), and the newest schemas the package ships.
VERSIONS = ("1.27.0", kubernetes_validate.utils.latest_version())


def resources(folder: Path) -> list[dict[str, Any]]:
    """The objects kustomize builds from `folder`'s resources (without its generators)."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    found: list[dict[str, Any]] = []
    for entry in kustomization["resources"]:
        path = (folder / entry).resolve()
        if path.is_dir():
            found += resources(path)
        else:
            found += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def generated_secret() -> dict[str, Any]:
    """The Secret the secretGenerator makes from secrets.env.example."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    (generator,) = kustomization["secretGenerator"]
    data = {}
    for line in (K8S / "secrets.env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            data[name] = value
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": generator["name"]},
            "type": "Opaque", "stringData": data}


ALL = [*resources(K8S / "dev-redis"), generated_secret()]


def named(kind: str, name: str) -> dict[str, Any]:
    return next(o for o in ALL if o["kind"] == kind and o["metadata"]["name"] == name)


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_is_valid_against_the_kubernetes_schemas(version: str) -> None:
    for obj in ALL:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']} {obj['metadata']['name']}: {exc.message} at "
                        f"{'.'.join(str(p) for p in exc.path)}")


def test_every_service_has_grpc_probes_resources_and_metrics() -> None:
    ports = {"gateway": 50051, "ingest": 50052, "ranker": 50053}
    for name, port in ports.items():
        pod = named("Deployment", name)["spec"]["template"]
        (container,) = pod["spec"]["containers"]
        assert container["command"] == ["python", "-m", name]
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"] == {"port": port}, (name, probe)
        assert set(container["resources"]["requests"]) == {"cpu", "memory"}, name
        env = {e["name"]: e for e in container["env"]}
        assert env[f"{name.upper()}_METRICS_PORT"]["value"] == "9090"
        assert pod["metadata"]["annotations"]["prometheus.io/port"] == "9090"
        # Longer than the servers' 5 s drain.
        assert pod["spec"]["terminationGracePeriodSeconds"] > 5


def test_secrets_come_from_the_secret_and_it_holds_every_key_used() -> None:
    secret = generated_secret()
    for name in ("gateway", "ingest", "ranker"):
        (container,) = named("Deployment", name)["spec"]["template"]["spec"]["containers"]
        for env in container["env"]:
            if "TOKEN" in env["name"] or "SECRET" in env["name"] or env["name"] == "REDIS_URL":
                ref = env["valueFrom"]["secretKeyRef"]
                assert ref["name"] == secret["metadata"]["name"], env["name"]
                assert ref["key"] in secret["stringData"], env["name"]
        env = {e["name"]: e for e in container["env"]}
        # Every service bears the internal secret: ingest and the rankers refuse calls
        # without it, the gateway sends it.
        assert env["PAIRWISE_INTERNAL_SECRET"]["valueFrom"]["secretKeyRef"]["key"] == (
            "PAIRWISE_INTERNAL_SECRET"), name
        # Each service connects to Redis as its own user.
        key = env["REDIS_URL"]["valueFrom"]["secretKeyRef"]["key"]
        assert key == f"{name.upper()}_REDIS_URL", name
        assert secret["stringData"][key].startswith(f"redis://{name}:"), name
    assert "secrets.env" in (K8S / ".gitignore").read_text().splitlines()


def test_front_doors_scale_and_are_reached_through_headless_services() -> None:
    for name in ("gateway", "ingest"):
        service = named("Service", name)
        assert service["spec"]["clusterIP"] == "None"
        hpa = named("HorizontalPodAutoscaler", name)
        assert hpa["spec"]["scaleTargetRef"]["name"] == name
        assert hpa["spec"]["minReplicas"] >= 2
    (gateway,) = named("Deployment", "gateway")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in gateway["env"]}
    assert env["INGEST_ADDR"] == "dns:///ingest:50052"


def test_rankers_publish_their_pod_address() -> None:
    (ranker,) = named("Deployment", "ranker")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in ranker["env"]}
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert env["RANKER_ADVERTISE_ADDR"]["value"] == "$(POD_IP):50053"
    assert env["RANKER_HOST"]["value"] == "0.0.0.0"


def test_redis_is_external_unless_the_dev_overlay_adds_it() -> None:
    assert not any(o["kind"] == "StatefulSet" for o in resources(K8S))
    redis = named("StatefulSet", "redis")
    (container,) = redis["spec"]["template"]["spec"]["containers"]
    assert "--bind" in container["command"]
    keys = {env["name"]: env["valueFrom"]["secretKeyRef"]["key"] for env in container["env"]
            if "valueFrom" in env}
    # The default user's password and one per service user, all from the Secret.
    assert keys == {name: name for name in (
        "PAIRWISE_REDIS_PASSWORD", *(f"PAIRWISE_REDIS_{user}_PASSWORD"
                                     for user in ("INGEST", "RANKER", "GATEWAY")))}
