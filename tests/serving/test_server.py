"""The server over real HTTP: TF Serving REST and KServe v2, auth, limits, batching under concurrency, metrics, logs."""

import asyncio
import json

import httpx
import numpy as np
import pytest
from sample_texts import sentiment_texts
from server_process import API_KEY, LABELS_V1, LABELS_V2, OTHER_KEY

AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def reference(exports):
    """The exported SavedModels called directly (no server): {"v1": fn, "v2": fn, "pairs": fn}."""
    import tensorflow as tf

    signatures = {key: tf.saved_model.load(exports[key]).signatures["serving_default"] for key in ("v1", "v2", "pairs")}

    def predict(key, texts, pairs=None):
        inputs = {"text": tf.constant(texts)} if pairs is None else {"text": tf.constant(texts),
                                                                      "text_pair": tf.constant(pairs)}
        return {name: value.numpy() for name, value in signatures[key](**inputs).items()}

    return predict


def _labels(values):
    return [value.decode() for value in values]


def test_health_is_open_and_model_status_lists_versions(server):
    assert httpx.get(server.url + "/v2/health/live").json() == {"live": True}
    assert httpx.get(server.url + "/v2/health/ready").json() == {"ready": True}
    assert httpx.get(server.url + "/v2/models/sentiment/ready").status_code == 200
    status = httpx.get(server.url + "/v1/models/sentiment", headers=AUTH).json()
    versions = [(v["version"], v["state"]) for v in status["model_version_status"]]
    assert versions == [("1", "AVAILABLE"), ("2", "AVAILABLE")]
    assert httpx.get(server.url + "/v1/models/sentiment/labels", headers=AUTH).json()["labels"] == LABELS_V2
    assert httpx.get(server.url + "/v1/models/sentiment/versions/1/labels", headers=AUTH).json()["labels"] == LABELS_V1


def test_tfserving_rows_and_columns_match_the_export(server, reference):
    texts = ["The film was superb and lovely.", "The plot was dull and awful.", ""]
    expected = reference("v2", texts)
    rows = httpx.post(server.url + "/v1/models/sentiment:predict", headers=AUTH, json={"instances": texts}).json()
    probabilities = np.array([row["probabilities"] for row in rows["predictions"]])
    assert np.abs(probabilities - expected["probabilities"]).max() < 1e-5
    assert [row["label"] for row in rows["predictions"]] == _labels(expected["label"])
    columns = httpx.post(server.url + "/v1/models/sentiment:predict", headers=AUTH, json={"inputs": texts}).json()
    assert columns["outputs"]["class_id"] == expected["class_id"].tolist()
    assert np.abs(np.array(columns["outputs"]["probabilities"]) - expected["probabilities"]).max() < 1e-5
    old = httpx.post(server.url + "/v1/models/sentiment/versions/1:predict", headers=AUTH,
                     json={"instances": [{"text": t} for t in texts]}).json()
    assert [row["label"] for row in old["predictions"]] == _labels(reference("v1", texts)["label"])
    metadata = httpx.get(server.url + "/v1/models/sentiment/metadata", headers=AUTH).json()
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["inputs"]["text"]["dtype"] == "DT_STRING"
    assert signature["outputs"]["probabilities"]["dtype"] == "DT_FLOAT"
    assert metadata["model_spec"] == {"name": "sentiment", "signature_name": "", "version": "2"}


def test_pairs_model_over_both_protocols(server, reference):
    texts, pairs = ["a good movie", "the plot"], ["it was great", "it was dull"]
    expected = reference("pairs", texts, pairs)
    rows = httpx.post(server.url + "/v1/models/pairs:predict", headers=AUTH,
                      json={"instances": [{"text": t, "text_pair": p} for t, p in zip(texts, pairs)]}).json()
    assert np.abs(np.array([r["probabilities"] for r in rows["predictions"]]) - expected["probabilities"]).max() < 1e-5
    infer = httpx.post(server.url + "/v2/models/pairs/infer", headers=AUTH, json={
        "id": "req-7",
        "inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": texts},
                   {"name": "text_pair", "shape": [2, 1], "datatype": "BYTES", "data": [[p] for p in pairs]}],
        "outputs": [{"name": "probabilities"}, {"name": "label"}]})
    assert infer.status_code == 200, infer.text
    body = infer.json()
    assert body["id"] == "req-7" and body["model_name"] == "pairs" and body["model_version"] == "1"
    outputs = {output["name"]: output for output in body["outputs"]}
    assert set(outputs) == {"probabilities", "label"}
    assert outputs["probabilities"]["shape"] == [2, 2] and outputs["probabilities"]["datatype"] == "FP32"
    assert np.abs(np.array(outputs["probabilities"]["data"]) - expected["probabilities"].reshape(-1)).max() < 1e-5
    assert outputs["label"] == {"name": "label", "shape": [2], "datatype": "BYTES", "data": _labels(expected["label"])}
    meta = httpx.get(server.url + "/v2/models/pairs", headers=AUTH).json()
    assert [i["name"] for i in meta["inputs"]] == ["text", "text_pair"]


PROTECTED = [("GET", "/v1/models/sentiment", None), ("GET", "/v1/models/sentiment/metadata", None),
             ("GET", "/v1/models/sentiment/labels", None), ("GET", "/v2/models/sentiment", None),
             ("POST", "/v1/models/sentiment:predict", {"instances": ["good"]}),
             ("POST", "/v2/models/sentiment/infer",
              {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["good"]}]})]


def test_prediction_and_model_routes_need_a_valid_key(server):
    with httpx.Client(base_url=server.url) as client:
        for method, path, body in PROTECTED:
            for headers, error in [({}, None),
                                   ({"Authorization": "Bearer wrong-key-0123456789abcdef"}, "invalid_token"),
                                   ({"Authorization": f"Basic {API_KEY}"}, None), ({"Authorization": "Bearer"}, None)]:
                answer = client.request(method, path, json=body, headers=headers)
                assert answer.status_code == 401, (method, path, headers)
                challenge = answer.headers["www-authenticate"]
                assert challenge.startswith("Bearer") and (error is None or f'error="{error}"' in challenge)
                assert "error" in answer.json()
            other = client.request(method, path, json=body, headers={"Authorization": f"Bearer {OTHER_KEY}"})
            assert other.status_code == 200


def test_limits_and_malformed_requests_get_json_errors(server):
    predict = server.url + "/v1/models/sentiment:predict"
    cases = [
        ({"json": {"instances": ["good"] * 9}}, 413),
        ({"json": {"instances": ["good", "é" * 101]}}, 413),  # 202 bytes in UTF-8, 101 characters
        ({"json": {"inputs": ["good"] * 9}}, 413),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400),
        ({"content": b"\xff\xfe\x00", "headers": {"content-type": "application/json"}}, 400),
        ({"content": b"x" * 100_000}, 413),
        ({"json": {"instances": []}}, 400),
        ({"json": {"instances": ["good", 3]}}, 400),
        ({"json": {"instances": ["good"], "inputs": ["good"]}}, 400),
        ({"json": ["good"]}, 400),
        ({"json": {"instances": ["good"], "signature_name": "other"}}, 400),
    ]
    with httpx.Client() as client:
        for kwargs, status in cases:
            headers = {**AUTH, **kwargs.pop("headers", {})}
            answer = client.post(predict, headers=headers, **kwargs)
            assert answer.status_code == status, (kwargs, answer.text)
            assert set(answer.json()) == {"error"} and "Traceback" not in answer.text
        at_limit = client.post(predict, headers=AUTH, json={"instances": ["é" * 100]})  # 200 bytes: at the limit
        assert at_limit.status_code == 200
        infer = server.url + "/v2/models/sentiment/infer"
        for body, status in [({"inputs": [{"name": "text", "shape": [9], "datatype": "BYTES", "data": ["a"] * 9}]},
                              413),
                             ({"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["a"]}]}, 400),
                             ({"inputs": [{"name": "text", "shape": [1], "datatype": "FP32", "data": [1.0]}]}, 400),
                             ({"inputs": [{"name": "txt", "shape": [1], "datatype": "BYTES", "data": ["a"]}]}, 400),
                             ({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]}],
                               "outputs": [{"name": "nope"}]}, 400)]:
            answer = client.post(infer, headers=AUTH, json=body)
            assert answer.status_code == status and "error" in answer.json(), (body, answer.text)
        pairs_missing = client.post(server.url + "/v1/models/pairs:predict", headers=AUTH, json={"instances": ["a"]})
        assert pairs_missing.status_code == 400 and "text_pair" in pairs_missing.json()["error"]
        unknown = client.get(server.url + "/v1/models/nope/metadata", headers=AUTH)
        assert unknown.status_code == 404 and "sentiment" in unknown.json()["error"]
        assert client.get(server.url + "/v1/models/sentiment/versions/7", headers=AUTH).status_code == 404
        assert client.get(server.url + "/nowhere").json() == {"error": "No route GET /nowhere."}


def _metric(text, name, **labels):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{key}="{value}"' in line for key, value in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total


def test_concurrent_requests_are_batched_and_each_gets_its_own_predictions(server, reference):
    texts, _ = sentiment_texts(60, seed=5)
    requests = [texts[i:i + 1 + i % 3] for i in range(0, 40)]  # 40 requests of 1-3 texts, overlapping
    before = httpx.get(server.url + "/metrics").text

    async def send(client, i, chunk):
        if i % 2:
            answer = await client.post(f"{server.url}/v1/models/sentiment:predict", json={"instances": chunk})
            answer.raise_for_status()
            return np.array([row["probabilities"] for row in answer.json()["predictions"]])
        answer = await client.post(f"{server.url}/v2/models/sentiment/infer", json={
            "inputs": [{"name": "text", "shape": [len(chunk)], "datatype": "BYTES", "data": chunk}]})
        answer.raise_for_status()
        output = next(o for o in answer.json()["outputs"] if o["name"] == "probabilities")
        return np.array(output["data"]).reshape(output["shape"])

    async def send_all():
        limits = httpx.Limits(max_connections=40)
        async with httpx.AsyncClient(headers=AUTH, limits=limits, timeout=30) as client:
            return await asyncio.gather(*(send(client, i, chunk) for i, chunk in enumerate(requests)))

    answers = asyncio.run(send_all())
    for chunk, answer in zip(requests, answers):
        assert answer.shape == (len(chunk), 2)
        assert np.abs(answer - reference("v2", chunk)["probabilities"]).max() < 1e-5
    after = httpx.get(server.url + "/metrics").text
    calls = _metric(after, "tunekit_batch_size_count", model="sentiment") - _metric(before, "tunekit_batch_size_count",
                                                                                   model="sentiment")
    rows = _metric(after, "tunekit_batch_size_sum", model="sentiment") - _metric(before, "tunekit_batch_size_sum",
                                                                                model="sentiment")
    assert rows == sum(len(chunk) for chunk in requests)
    assert calls < len(requests) / 2, f"{calls} model calls for {len(requests)} concurrent requests: not batched"


def test_a_bad_text_fails_only_its_own_request_not_the_requests_batched_with_it(server, reference):
    """20 good requests and 2 with a lone surrogate ("\\ud800": valid JSON, but no model can read it), all at once:
    the server batches up to 8 texts within 50 ms, so each bad request would share a batch with good ones."""
    texts, _ = sentiment_texts(20, seed=9)
    kserve = '{{"inputs": [{{"name": "text", "shape": [1], "datatype": "BYTES", "data": [{}]}}]}}'
    requests = [("/v1/models/sentiment:predict", json.dumps({"instances": [text]})) if i % 2 else
                ("/v2/models/sentiment/infer", kserve.format(json.dumps(text))) for i, text in enumerate(texts)]
    requests.insert(7, ("/v1/models/sentiment:predict", '{"instances": ["bad \\ud800"]}'))
    requests.insert(15, ("/v2/models/sentiment/infer", kserve.format('"\\udfff bad"')))
    before = httpx.get(server.url + "/metrics").text

    async def send_all():
        headers = {**AUTH, "Content-Type": "application/json"}
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30,
                                     limits=httpx.Limits(max_connections=len(requests))) as client:
            return await asyncio.gather(*(client.post(path, content=body) for path, body in requests))

    answers = asyncio.run(send_all())
    for bad in (answers.pop(15), answers.pop(7)):
        assert bad.status_code == 400, bad.text
        assert "[0] holds a character that cannot be written as UTF-8" in bad.json()["error"]
        assert "surrogate" in bad.json()["error"]
    assert [answer.status_code for answer in answers] == [200] * 20
    expected = reference("v2", texts)["probabilities"]
    for i, answer in enumerate(answers):
        if i % 2:
            probabilities = answer.json()["predictions"][0]["probabilities"]
        else:
            probabilities = next(o for o in answer.json()["outputs"] if o["name"] == "probabilities")["data"]
        assert np.abs(np.array(probabilities) - expected[i]).max() < 1e-5
    after = httpx.get(server.url + "/metrics").text
    assert _metric(after, "tunekit_requests_total", status="500") == _metric(before, "tunekit_requests_total",
                                                                            status="500")


def test_metrics_cover_traffic_latency_batches_and_drift(server):
    httpx.post(server.url + "/v1/models/sentiment:predict", headers=AUTH, json={"instances": ["good", "bad film"]})
    httpx.get(server.url + "/v1/models/sentiment")  # a 401
    text = httpx.get(server.url + "/metrics").text
    assert _metric(text, "tunekit_requests_total", route="/v1/models/{name}:predict", method="POST", status="200") >= 1
    assert _metric(text, "tunekit_requests_total", route="/v1/models/{name}", status="401") >= 1
    assert _metric(text, "tunekit_request_duration_seconds_count", route="/v1/models/{name}:predict") >= 1
    assert _metric(text, "tunekit_batch_size_count", model="sentiment") >= 1
    assert "tunekit_queue_depth{model=\"sentiment\"}" in text
    assert sum(_metric(text, "tunekit_predicted_labels_total", model="sentiment", label=label)
               for label in LABELS_V2) >= 2
    assert _metric(text, "tunekit_input_length_chars_count", model="sentiment") >= 2
    assert _metric(text, "tunekit_model_ready", model="pairs", version="1") == 1


def test_access_log_is_json_lines_without_keys(server):
    httpx.post(server.url + "/v1/models/sentiment:predict", headers={**AUTH, "X-Request-ID": "trace-42"},
               json={"instances": ["good"]})
    httpx.get(server.url + "/v1/models/sentiment", headers={"Authorization": "Bearer not-a-key-0123456789"})
    log = server.log()
    assert API_KEY not in log and OTHER_KEY not in log and "not-a-key" not in log
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    access = [line for line in lines if "route" in line]
    ours = next(line for line in access if line["request_id"] == "trace-42")
    assert ours["status"] == 200 and ours["model"] == "sentiment" and ours["texts"] == 1 and ours["duration_ms"] > 0
    assert any(line["status"] == 401 for line in access)
