"""deploy/: the alert rules, the Grafana dashboard, the HPA's custom metric and the prometheus-adapter rule name only
metrics (and labels) that a running server's /metrics has; the rules pass `promtool check rules` where promtool is
installed."""

import json
import pathlib
import re
import shutil
import subprocess

import httpx
import pytest
import yaml
from server_process import API_KEY

DEPLOY = pathlib.Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus-rules.yaml"
DASHBOARD = DEPLOY / "grafana-dashboard.json"
# Labels that Prometheus adds when it scrapes (target labels), or that PromQL makes (histogram buckets' `le` is the
# server's own).
SCRAPE_LABELS = {"job", "instance", "namespace", "pod"}
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


@pytest.fixture(scope="module")
def served_metrics(server):
    """{series name: label names} of the running server's /metrics, from the declared types (so that a labelled
    counter that has not counted yet is known too)."""
    from prometheus_client.parser import text_string_to_metric_families

    prediction = httpx.post(server.url + "/v1/models/sentiment:predict", headers={"Authorization": f"Bearer {API_KEY}"},
                            json={"instances": ["A fine film."]})  # so that batch and input histograms have samples
    assert prediction.status_code == 200
    text = httpx.get(server.url + "/metrics").text
    series = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("tunekit_"):
            continue
        labels = {name for sample in family.samples for name in sample.labels}
        for suffix in _SUFFIXES[family.type]:
            series[family.name + suffix] = labels
    for name in ("tunekit_rate_limited_requests_total", "tunekit_worker_requests_total"):
        assert name in series  # declared even before any sample
    series["tunekit_rate_limited_requests_total"] = {"api_key"}  # no refusals on this server: labels from the code
    return series


def _check_expression(expr, served_metrics, where):
    """Every tunekit metric in `expr` is served, and every label it groups by or matches is one of theirs."""
    names = set(re.findall(r"\btunekit_[a-z_]+\b", expr))
    assert names, f"{where}: no tunekit metric in {expr!r}"
    unknown = names - set(served_metrics)
    assert not unknown, f"{where}: {sorted(unknown)} not in /metrics"
    labels = set().union(*(served_metrics[name] for name in names)) | SCRAPE_LABELS
    grouped = {label.strip() for group in re.findall(r"\bby \(([^)]*)\)", expr) for label in group.split(",")}
    matched = set(re.findall(r"[{,]\s*([a-z_]+)\s*[=!]~?", expr))
    assert grouped | matched <= labels, f"{where}: labels {sorted((grouped | matched) - labels)} not on {names}"
    return names


def test_alert_rules_cover_the_issue_and_name_only_served_metrics(served_metrics):
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    rules = [rule for group in document["groups"] for rule in group["rules"]]
    used = {}
    for rule in rules:
        assert set(rule) >= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in ("critical", "warning", "info")
        used[rule["alert"]] = _check_expression(rule["expr"], served_metrics, rule["alert"])
    assert len(used) == len(rules)  # alert names are unique
    # The alerts issue #22 asks for: error rate, p99 latency, queue saturation and 503s, model not ready, 401 bursts.
    assert "tunekit_requests_total" in used["TunekitHighErrorRate"]
    assert "tunekit_request_duration_seconds_bucket" in used["TunekitHighLatencyP99"]
    assert used["TunekitQueueSaturated"] == {"tunekit_queue_depth", "tunekit_queue_capacity"}
    assert 'status="503"' in next(r["expr"] for r in rules if r["alert"] == "TunekitOverloaded503")
    assert used["TunekitModelNotReady"] == {"tunekit_model_ready"}
    assert 'status="401"' in next(r["expr"] for r in rules if r["alert"] == "TunekitUnauthorizedBurst")


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (apt-get install prometheus)")
def test_promtool_accepts_the_rules():
    result = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_dashboard_panels_query_only_served_metrics(served_metrics):
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    queried = set()
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            queried |= _check_expression(target["expr"], served_metrics, panel["title"])
    # Every metric an alert watches is on the dashboard too.
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    alerted = set(re.findall(r"\btunekit_[a-z_]+\b", json.dumps(rules)))
    assert alerted <= queried, sorted(alerted - queried)
    variables = {variable["name"] for variable in dashboard["templating"]["list"]}
    assert {"datasource", "job"} <= variables


def test_hpa_scales_on_cpu_and_the_served_queue_depth(served_metrics):
    hpa = yaml.safe_load((DEPLOY / "kubernetes" / "hpa.yaml").read_text(encoding="utf-8"))
    metrics = {metric["type"]: metric for metric in hpa["spec"]["metrics"]}
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    custom = metrics["Pods"]["pods"]["metric"]["name"]
    assert custom == "tunekit_queue_depth" and custom in served_metrics
    assert float(metrics["Pods"]["pods"]["target"]["averageValue"]) > 0
    adapter = yaml.safe_load((DEPLOY / "prometheus-adapter.yaml").read_text(encoding="utf-8"))
    (rule,) = adapter["rules"]["custom"]
    assert rule["name"]["as"] == custom
    _check_expression(rule["seriesQuery"], served_metrics, "prometheus-adapter seriesQuery")
