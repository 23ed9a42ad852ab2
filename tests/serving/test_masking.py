"""Request texts in logs: never by default (access log, error paths, /metrics), masked with `--log-texts`."""

import json
import logging
import time

import httpx
import numpy as np
import pytest
from server_process import API_KEY, ServerProcess, serve_in_thread

from tunekit.serving import create_app
from tunekit.serving.masking import describe_failure, mask_text

AUTH = {"Authorization": f"Bearer {API_KEY}"}
SECRET = "Zanzibarquill"  # a word that no log line, metric or model output holds unless a request text leaks
PRIVATE = (f"{SECRET} here: write to jane.doe+films@example.co.uk or call +1 (555) 010-4477; "
           "card 4111 1111 1111 1111, passport 987654321.")
DIGITS = ("(555) 010-4477", "4111 1111 1111 1111", "987654321")  # never in timestamps or hex request ids


@pytest.mark.parametrize("text, masked", [
    ("Mail me at jane.doe+films@example.co.uk.", "Mail me at [email]."),
    ("Écrivez à élodie.martin@exemple.fr, merci", "Écrivez à [email], merci"),
    ("Call +1 (555) 010-4477 after 6pm", "Call [number] after 6pm"),
    ("ring 020 7946 0958 or 07700-900123", "ring [number] or [number]"),
    ("+33 6 12 34 56 78", "[number]"),
    ("Card 4111 1111 1111 1111, exp 04/27", "Card [number], exp 04/27"),
    ("card 4111-1111-1111-1111 / 5500000000000004", "card [number] / [number]"),
    ("SSN 123-45-6789, account NL91ABNA0417164300", "SSN [number], account NL91ABNA[number]"),
    ("born 1984.03.12, ticket #123456", "born [number], ticket #[number]"),
    # What must stay: ratings, years, prices, short numbers, times.
    ("I give it 8/10 9/10 for the 2019 remake.", "I give it 8/10 9/10 for the 2019 remake."),
    ("Tickets cost $12.50 at 7:30; 120 minutes, 3 stars.", "Tickets cost $12.50 at 7:30; 120 minutes, 3 stars."),
    ("A 12345 postcode", "A 12345 postcode"),
    ("", ""),
])
def test_mask_text_hides_addresses_phones_and_long_numbers(text, masked):
    assert mask_text(text) == masked


def test_describe_failure_keeps_the_message_out_unless_asked_and_masks_it():
    try:
        raise ValueError(f"cannot tokenize {PRIVATE!r}")
    except ValueError as error:
        hidden, shown = describe_failure(error, log_texts=False), describe_failure(error, log_texts=True)
    assert "ValueError" in hidden and "--log-texts" in hidden and "test_masking.py" in hidden
    assert SECRET not in hidden and "jane.doe" not in hidden
    assert SECRET in shown and "[email]" in shown and "[number]" in shown
    assert "jane.doe" not in shown and not any(digits in shown for digits in DIGITS)


def _requests_with_private_texts(url):
    """Predictions and failing requests (400, 413, 404) that all carry `PRIVATE`; returns the statuses."""
    with httpx.Client(base_url=url, headers=AUTH, timeout=30) as client:
        return [
            client.post("/v1/models/sentiment:predict", json={"instances": [PRIVATE[:190], "fine"]}).status_code,
            client.post("/v2/models/sentiment/infer", json={"inputs": [
                {"name": "text", "shape": [1], "datatype": "BYTES", "data": [PRIVATE[:190]]}]}).status_code,
            client.post("/v1/models/sentiment:predict", json={"instances": [PRIVATE[:190], 5]}).status_code,
            client.post("/v1/models/sentiment:predict", json={"instances": [PRIVATE * 3]}).status_code,
            client.post("/v1/models/sentiment:predict", content=PRIVATE.encode()).status_code,
            client.post("/v1/models/missing:predict", json={"instances": [PRIVATE]}).status_code,
        ]


def test_by_default_no_text_reaches_the_log_or_metrics(server):
    statuses = _requests_with_private_texts(server.url)
    assert statuses == [200, 200, 400, 413, 400, 404]
    metrics = httpx.get(server.url + "/metrics").text
    log = server.log()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any(line.get("texts") == 2 for line in lines)  # the requests were logged, as counts
    for text in (log, metrics):
        assert SECRET not in text and "jane.doe" not in text and not any(digits in text for digits in DIGITS)


@pytest.fixture(scope="module")
def logging_server(exports, tmp_path_factory):
    process = ServerProcess([exports["sentiment"], "--name", "sentiment", "--log-texts", "--max-text-bytes", "200"],
                            tmp_path_factory.mktemp("log-texts"), env={"TUNEKIT_API_KEYS": API_KEY})
    try:
        process.wait_until("/v2/health/ready")
        yield process
    finally:
        process.stop()


def test_log_texts_writes_masked_texts_to_the_access_log(logging_server):
    statuses = _requests_with_private_texts(logging_server.url)
    assert statuses == [200, 200, 400, 413, 400, 404]
    log = logging_server.log()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    logged = [line for line in lines if "inputs" in line]
    assert [(line["route"], line["status"]) for line in logged] == [("/v1/models/{name}:predict", 200),
                                                                     ("/v2/models/{name}/infer", 200)]
    expected = mask_text(PRIVATE[:190])
    assert logged[0]["inputs"] == [expected, "fine"] and logged[1]["inputs"] == [expected]
    assert SECRET in expected and "[email]" in expected and expected.count("[number]") == 3
    assert "jane.doe" not in log and not any(digits in log for digits in DIGITS)
    assert SECRET not in httpx.get(logging_server.url + "/metrics").text


class QuotingModel:
    """Stands in for a model whose error message quotes its input, as tokenizer and TensorFlow errors can: a real
    export fails on no text on demand."""

    labels, task, num_segments, kind = ["no", "yes"], {"name": "classification"}, 1, "test"

    def predict(self, texts, text_pairs=None):
        for text in texts:
            if SECRET in text:
                raise ValueError(f"cannot tokenize {text!r}")
        return {"class_id": np.ones(len(texts), np.int32), "label": np.array(["yes"] * len(texts), dtype=object)}


@pytest.mark.parametrize("log_texts", [False, True])
def test_a_failing_prediction_logs_no_text_unless_asked_and_then_masked(caplog, log_texts):
    app = create_app({"quoting": QuotingModel()}, api_keys=[API_KEY], log_texts=log_texts, max_wait_ms=50)
    server, thread, url = serve_in_thread(app)
    try:
        with caplog.at_level(logging.INFO, logger="tunekit.serving"):
            deadline = time.monotonic() + 30
            while httpx.get(url + "/v2/health/ready").status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.02)
            with httpx.Client(base_url=url, headers=AUTH, timeout=30) as client:
                failed = client.post("/v1/models/quoting:predict", json={"instances": [PRIVATE]})
                fine = client.post("/v1/models/quoting:predict", json={"instances": ["fine"]})
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert failed.status_code == 500 and failed.json() == {"error": "Internal server error."}
    assert fine.status_code == 200
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1 and "ValueError" in errors[0].getMessage()
    assert "jane.doe" not in caplog.text and not any(digits in caplog.text for digits in DIGITS)
    if log_texts:
        assert f"cannot tokenize '{mask_text(PRIVATE)}'" in errors[0].getMessage()
    else:
        assert SECRET not in caplog.text and "--log-texts" in errors[0].getMessage()
