"""The Helm chart (deploy/helm/aidline), rendered by a real helm (`helm template`, `helm lint`)
with the default values, the Strimzi + CloudNativePG example and a set with ingress and HPA on.
Every rendered manifest of a Kubernetes kind is validated offline against the schemas of one
Kubernetes version (kubernetes-validate, strict: no unknown field); the operators' custom
resources, which it has no schema for, are checked here for what their operators require.

Needs helm: `deploy/local/test-tools.sh` builds it from its Go module into the cache."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from shared.cli.run import SERVICES
from shared.messaging.topics import TopicSettings
from shared.settings import ServiceSettings
from tests.infra import wait_for_tool

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy/helm/aidline"
EXAMPLE = ROOT / "deploy/helm/examples/strimzi-cnpg"
HELM_VERSION = "v4.3.2"  # as deploy/local/test-tools.sh builds it
HELM = Path(
    os.environ.get("AIDLINE_CACHE", Path.home() / ".cache/aidline"),
    f"helm-{HELM_VERSION}",
    "helm",
)
KUBERNETES = "1.34.0"
HOOK_EVENTS = {"pre-install", "pre-upgrade"}

# What a deployment must always name: no default database, broker or key.
REQUIRED = [
    "database.existingSecret=aidline-db",
    "database.host=postgres",
    "kafka.bootstrapServers=kafka:9092",
    "jwt.secret.existingSecret=aidline-jwt",
]
INGRESS_AND_HPA = [
    *REQUIRED,
    "ingress.enabled=true",
    "ingress.className=nginx",
    "ingress.hosts.request=request.aidline.example.org",
    "ingress.hosts.projection=aidline.example.org",
    "defaults.autoscaling.enabled=true",
]


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    wait_for_tool(HELM)  # `make test` may still be building it in the background
    return subprocess.run(
        [str(HELM), *args], capture_output=True, text=True, timeout=120, check=False
    )


def render(*, values: Path | None = None, sets: list[str]) -> list[dict[str, Any]]:
    args = ["template", "aidline", str(CHART), "--namespace", "aidline"]
    args += ["--kube-version", KUBERNETES]
    if values:
        args += ["-f", str(values)]
    for item in sets:
        args += ["--set", item]
    result = helm(*args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def default() -> list[dict[str, Any]]:
    return render(sets=REQUIRED)


@pytest.fixture(scope="module")
def example() -> list[dict[str, Any]]:
    return render(values=EXAMPLE / "values.yaml", sets=[])


@pytest.fixture(scope="module")
def scaled() -> list[dict[str, Any]]:
    return render(sets=INGRESS_AND_HPA)


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


CUSTOM_KINDS = {"KafkaTopic", "KafkaUser", "KafkaNodePool", "Kafka", "Cluster"}


@pytest.mark.parametrize("name", ["default", "example", "scaled"])
def test_every_manifest_validates_against_the_kubernetes_schemas(
    name: str, request: pytest.FixtureRequest
) -> None:
    docs: list[dict[str, Any]] = request.getfixturevalue(name)
    kinds = {doc["kind"] for doc in docs}
    assert {"Deployment", "Service", "PodDisruptionBudget", "Job"} <= kinds
    for doc in docs:
        if doc["kind"] in CUSTOM_KINDS:
            continue  # checked by the tests of the custom resources below
        try:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{doc['kind']} {doc['metadata']['name']}: {error.message}")


def test_the_validation_refuses_what_kubernetes_would() -> None:
    # The check above could fail: a misspelt field is an error in strict mode.
    deployment = of_kind(render(sets=REQUIRED), "Deployment")["aidline-request"]
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)


def test_helm_lint_passes() -> None:
    for args in (
        [f"--set={item}" for item in REQUIRED],
        ["-f", str(EXAMPLE / "values.yaml")],
        [f"--set={item}" for item in INGRESS_AND_HPA],
    ):
        result = helm("lint", "--strict", str(CHART), "--kube-version", KUBERNETES, *args)
        assert result.returncode == 0, result.stdout + result.stderr


def test_a_deployment_service_and_disruption_budget_per_service(
    default: list[dict[str, Any]],
) -> None:
    names = {f"aidline-{service}" for service in SERVICES}
    deployments = of_kind(default, "Deployment")
    assert set(deployments) == names
    assert set(of_kind(default, "Service")) == names
    budgets = of_kind(default, "PodDisruptionBudget")
    assert set(budgets) == names
    for name, budget in budgets.items():
        selector = deployments[name]["spec"]["selector"]["matchLabels"]
        assert budget["spec"]["selector"]["matchLabels"] == selector
        assert budget["spec"]["maxUnavailable"] == 1
        assert deployments[name]["spec"]["replicas"] >= 2  # one may go, one stays


def test_every_service_starts_as_the_image_and_compose_start_it(
    default: list[dict[str, Any]],
) -> None:
    for name, spec in pod_specs(default):
        (container,) = spec["containers"]
        service = name.removeprefix("aidline-")
        if service == "migrate":
            assert container["command"] == ["aidline", "migrate"]
            continue
        assert container["command"] == ["python", "-m", f"services.{service}"]
        env = {item["name"]: item.get("value") for item in container["env"]}
        assert env[f"{service.upper()}_PORT"] == str(SERVICES[service])
        assert container["ports"][0]["containerPort"] == SERVICES[service]
        assert env["HOST"] == "0.0.0.0"
        assert env["MIGRATE_ON_START"] == "false"  # the Job migrates, never the replicas
        # No `<SERVICE>_PORT=tcp://...` from Kubernetes' service links over REQUEST_PORT.
        assert spec["enableServiceLinks"] is False


def test_probes_follow_the_health_semantics(default: list[dict[str, Any]]) -> None:
    for name, deployment in of_kind(default, "Deployment").items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        # Restart only when the process does not answer; readiness is the database's.
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz", name
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert container[probe]["httpGet"]["port"] == "http", name


def test_every_pod_runs_restricted(example: list[dict[str, Any]]) -> None:
    for name, spec in pod_specs(example):
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert pod["runAsUser"] > 0, name
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is False, name
        (container,) = spec["containers"]
        own = container["securityContext"]
        assert own["runAsNonRoot"] is True and own["runAsUser"] > 0, name
        assert own["allowPrivilegeEscalation"] is False, name
        assert own["readOnlyRootFilesystem"] is True, name
        assert own["capabilities"]["drop"] == ["ALL"], name
        assert "add" not in own["capabilities"], name
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        assert mounts["/tmp"] == "tmp", name  # the only writable place
        assert {"emptyDir"} <= set(next(v for v in spec["volumes"] if v["name"] == "tmp")), name
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), name
        assert "memory" in resources["limits"], name


def test_the_image_runs_as_the_user_the_chart_names(default: list[dict[str, Any]]) -> None:
    text = (ROOT / "Dockerfile").read_text()
    (user,) = re.findall(r"^USER (\S+)$", text.split("\nFROM ")[-1], re.MULTILINE)
    if not user.isdigit():  # a name: the uid it was made with
        (user,) = re.findall(rf"useradd .*--uid (\d+) .*\b{user}\b", text)
    for name, spec in pod_specs(default):
        assert spec["securityContext"]["runAsUser"] == int(user), name


def test_the_migration_job_is_a_pre_install_and_pre_upgrade_hook(
    example: list[dict[str, Any]],
) -> None:
    (job,) = of_kind(example, "Job").values()
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == HOOK_EVENTS
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    # The services' database, and nothing of Kafka: the hook runs before the release's own
    # resources, so a Secret the release's KafkaUser makes would not be there yet.
    deployment = of_kind(example, "Deployment")["aidline-request"]
    (service,) = deployment["spec"]["template"]["spec"]["containers"]
    database = [item for item in service["env"] if item["name"].startswith("DATABASE_")]
    assert [item for item in container["env"] if item["name"].startswith("DATABASE_")] == database
    assert not [item for item in container["env"] if item["name"].startswith(("KAFKA", "JWT"))]
    assert {volume["name"] for volume in job["spec"]["template"]["spec"]["volumes"]} == {"tmp"}


def secret_like(name: str) -> bool:
    return any(word in name for word in ("PASSWORD", "SECRET", "DATABASE_USER"))


@pytest.mark.parametrize("name", ["default", "example", "scaled"])
def test_no_secret_is_written_into_a_manifest(name: str, request: pytest.FixtureRequest) -> None:
    docs: list[dict[str, Any]] = request.getfixturevalue(name)
    assert not of_kind(docs, "Secret")  # the chart references Secrets, it never holds one
    checked = 0
    for pod, spec in pod_specs(docs):
        (container,) = spec["containers"]
        for item in container["env"]:
            if secret_like(item["name"]):
                assert "value" not in item, (pod, item)
                assert item["valueFrom"]["secretKeyRef"]["name"], (pod, item)
                checked += 1
            if item["name"] == "DATABASE_URL" and "value" in item:
                # Put together by Kubernetes from the variables above it, in the container.
                assert "$(DATABASE_PASSWORD)" in item["value"], pod
    assert checked >= 5 * 2  # the database's user and password in every pod


def setting_names(service: str) -> set[str]:
    """The environment variables a service's settings class reads."""
    module = importlib.import_module(f"services.{service}.settings")
    (cls,) = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, ServiceSettings)
        and value.__module__ == module.__name__
    ]
    return {
        (field.validation_alias if isinstance(field.validation_alias, str) else name).upper()
        for name, field in cls.model_fields.items()
    }


def test_the_stream_ticket_secret_is_the_projections_own() -> None:
    docs = render(sets=[*REQUIRED, "services.projection.streamTicketSecret.existingSecret=tickets"])
    for pod, spec in pod_specs(docs):
        (container,) = spec["containers"]
        env = {item["name"]: item for item in container["env"]}
        if pod == "aidline-projection":
            reference = env["STREAM_TICKET_SECRET"]["valueFrom"]["secretKeyRef"]
            assert reference == {"name": "tickets", "key": "stream-ticket-secret"}
        else:
            assert "STREAM_TICKET_SECRET" not in env, pod


@pytest.mark.parametrize("name", ["default", "example", "scaled"])
def test_every_variable_the_chart_sets_is_a_setting(
    name: str, request: pytest.FixtureRequest
) -> None:
    # A misspelt name would be ignored by the services (extra="ignore"): caught here.
    docs: list[dict[str, Any]] = request.getfixturevalue(name)
    helpers = {"DATABASE_USER", "DATABASE_PASSWORD"}  # parts of DATABASE_URL
    for pod, spec in pod_specs(docs):
        (container,) = spec["containers"]
        service = pod.removeprefix("aidline-")
        known = setting_names(service) if service in SERVICES else {"LOG_LEVEL", "LOG_FORMAT"}
        for item in container["env"]:
            assert item["name"] in known | helpers | {"DATABASE_URL"}, (pod, item["name"])


def test_the_example_connects_over_tls_with_scram_and_a_cluster_replication(
    example: list[dict[str, Any]],
) -> None:
    (container,) = dict(pod_specs(example))["aidline-allocation"]["containers"]
    env = {item["name"]: item for item in container["env"]}
    assert env["KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
    assert env["KAFKA_REPLICATION_FACTOR"]["value"] == "3"
    assert env["KAFKA_MIN_INSYNC_REPLICAS"]["value"] == "2"
    assert env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "aidline",
        "key": "password",
    }
    ca = env["KAFKA_SSL_CAFILE"]["value"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert os.path.dirname(ca) in mounts
    assert env["JWT_PUBLIC_KEY_FILE"]["value"].startswith("/etc/aidline/jwt/")


def test_the_kafka_topics_are_the_ones_the_services_create(
    example: list[dict[str, Any]],
) -> None:
    # The services check an existing topic against their settings at start: the chart's
    # KafkaTopic resources must say the same (names, partitions, replicas, configs).
    settings = TopicSettings(partitions=6, replication_factor=3, min_insync_replicas=2)
    topics = of_kind(example, "KafkaTopic")
    expected = {spec.name: spec for spec in settings.event_topics()}
    assert {topic["spec"]["topicName"] for topic in topics.values()} == set(expected)
    for topic in topics.values():
        spec = expected[topic["spec"]["topicName"]]
        assert topic["apiVersion"] == "kafka.strimzi.io/v1"
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "aidline-kafka"
        assert topic["spec"]["partitions"] == spec.partitions
        assert topic["spec"]["replicas"] == spec.replication_factor == 3
        configs = {key: str(value) for key, value in topic["spec"]["config"].items()}
        assert configs == spec.configs
        assert topic["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    (user,) = of_kind(example, "KafkaUser").values()
    assert user["spec"]["authentication"]["type"] == "scram-sha-512"
    assert user["metadata"]["name"] == "aidline"  # the Secret the services' password is read from


def test_the_platform_example_is_a_replicated_kafka_and_postgresql() -> None:
    docs = [doc for doc in yaml.safe_load_all((EXAMPLE / "platform.yaml").read_text()) if doc]
    for doc in docs:
        assert set(doc) == {"apiVersion", "kind", "metadata", "spec"}, doc.get("kind")
        assert doc["metadata"]["name"]
    (pool,) = of_kind(docs, "KafkaNodePool").values()
    (kafka,) = of_kind(docs, "Kafka").values()
    (database,) = of_kind(docs, "Cluster").values()
    assert pool["apiVersion"] == kafka["apiVersion"] == "kafka.strimzi.io/v1"
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert pool["spec"]["replicas"] == 3
    assert set(pool["spec"]["roles"]) == {"controller", "broker"}
    assert pool["spec"]["storage"]["type"] == "persistent-claim"
    config = kafka["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] == 3 and config["min.insync.replicas"] == 2
    assert config["auto.create.topics.enable"] is False
    (listener,) = kafka["spec"]["kafka"]["listeners"]
    assert listener["tls"] is True
    assert listener["authentication"]["type"] == "scram-sha-512"
    assert {"topicOperator", "userOperator"} <= set(kafka["spec"]["entityOperator"])
    assert database["apiVersion"] == "postgresql.cnpg.io/v1"
    assert database["spec"]["instances"] == 3
    assert database["spec"]["storage"]["size"]
    initdb = database["spec"]["bootstrap"]["initdb"]

    # The chart's example values point at what this platform makes.
    values = yaml.safe_load((EXAMPLE / "values.yaml").read_text())
    name = database["metadata"]["name"]
    assert values["database"]["existingSecret"] == f"{name}-app"
    assert values["database"]["host"] == f"{name}-rw"
    assert values["database"]["name"] == initdb["database"]
    cluster = kafka["metadata"]["name"]
    assert values["strimzi"]["cluster"] == cluster
    assert values["kafka"]["bootstrapServers"] == f"{cluster}-kafka-bootstrap:{listener['port']}"
    assert values["kafka"]["tls"]["caSecret"]["name"] == f"{cluster}-cluster-ca-cert"
    assert values["kafka"]["sasl"]["passwordSecret"]["name"] == values["strimzi"]["user"]["name"]


def test_ingress_and_autoscaling_when_asked(
    default: list[dict[str, Any]], scaled: list[dict[str, Any]]
) -> None:
    assert not of_kind(default, "Ingress") and not of_kind(default, "HorizontalPodAutoscaler")
    (ingress,) = of_kind(scaled, "Ingress").values()
    backends = {
        rule["host"]: rule["http"]["paths"][0]["backend"]["service"]["name"]
        for rule in ingress["spec"]["rules"]
    }
    assert backends == {
        "request.aidline.example.org": "aidline-request",
        "aidline.example.org": "aidline-projection",
    }
    autoscalers = of_kind(scaled, "HorizontalPodAutoscaler")
    assert set(autoscalers) == set(of_kind(scaled, "Deployment"))
    for name, deployment in of_kind(scaled, "Deployment").items():
        assert "replicas" not in deployment["spec"], name  # the autoscaler owns the count
        assert autoscalers[name]["spec"]["scaleTargetRef"]["name"] == name


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (REQUIRED[1:], "database.existingSecret is required"),
        ([*REQUIRED, "jwt.jwksUrl=https://idp.example.org/jwks"], "set exactly one of jwt"),
        ([item for item in REQUIRED if not item.startswith("jwt")], "set exactly one of jwt"),
        ([*REQUIRED, "kafka.securityProtocol=SASL_SSL"], "needs kafka.sasl.username"),
        ([*REQUIRED, "ingress.enabled=true"], "ingress.enabled needs ingress.hosts"),
        ([*REQUIRED, "strimzi.enabled=true"], "strimzi.enabled needs strimzi.cluster"),
    ],
)
def test_values_that_could_not_work_are_refused_with_a_reason(
    sets: list[str], message: str
) -> None:
    args = ["template", "aidline", str(CHART), *[f"--set={item}" for item in sets]]
    result = helm(*args)
    assert result.returncode != 0
    assert message in result.stderr
