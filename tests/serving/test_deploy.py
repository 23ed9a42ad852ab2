"""deploy/: the Dockerfile and Kubernetes manifests agree with the server (ports, arguments, probe paths)."""

import argparse
import pathlib
import re

import httpx
import yaml

from tunekit.serving.cli import add_arguments

DEPLOY = pathlib.Path(__file__).resolve().parents[2] / "deploy"


def _manifests():
    documents = {}
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            documents[document["kind"]] = document
    return documents


def _server_args(argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_manifests_match_the_server_cli_and_each_other():
    manifests = _manifests()
    assert set(manifests) == {"Deployment", "Service", "HorizontalPodAutoscaler"}
    deployment, service, hpa = manifests["Deployment"], manifests["Service"], manifests["HorizontalPodAutoscaler"]
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    args = _server_args(container["args"])  # the server accepts the arguments as written
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": args.port} and args.host == "0.0.0.0"
    assert {env["name"] for env in container["env"]} == {"TUNEKIT_API_KEYS"}
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["targetPort"] in ("http", args.port)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": deployment["metadata"]["name"]}
    assert hpa["spec"]["minReplicas"] >= 2 and hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(args.port)
    # Kubernetes kills the pod after the grace period: it must cover the preStop sleep and the graceful shutdown.
    pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["spec"]["terminationGracePeriodSeconds"] > pre_stop + args.graceful_timeout
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] in ("http", args.port)
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"


def test_dockerfile_runs_the_server_as_the_manifests_expect():
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    deployment = _manifests()["Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    entrypoint = re.search(r"^ENTRYPOINT (\[.*\])$", dockerfile, re.M).group(1)
    command = re.search(r"^CMD (\[.*\])$", dockerfile, re.M).group(1)
    assert yaml.safe_load(entrypoint) == ["python", "-m", "tunekit.serving"]
    assert yaml.safe_load(command) == container["args"]
    exposed = int(re.search(r"^EXPOSE (\d+)$", dockerfile, re.M).group(1))
    assert exposed == container["ports"][0]["containerPort"]
    assert re.search(r'pip install "?\.\[serve\]"?', dockerfile)
    assert re.search(r"^USER \d+$", dockerfile, re.M)  # not root


def test_probe_paths_answer_without_a_key_on_a_running_server(server):
    (container,) = _manifests()["Deployment"]["spec"]["template"]["spec"]["containers"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        answer = httpx.get(server.url + container[probe]["httpGet"]["path"])  # probes send no Authorization
        assert answer.status_code == 200, (probe, answer.text)
    annotations = _manifests()["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert "tunekit_requests_total" in httpx.get(server.url + annotations["prometheus.io/path"]).text
