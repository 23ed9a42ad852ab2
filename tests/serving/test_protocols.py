"""Wire formats without a server: TF Serving and KServe bodies in, responses out, API keys."""

import json

import numpy as np
import pytest

from tunekit.serving.auth import KeyChecker, load_api_keys
from tunekit.serving.protocols import (
    Limits,
    RequestError,
    decode_json,
    format_kserve,
    format_tfserving,
    parse_tfserving,
)

LIMITS = Limits(max_texts=4, max_text_bytes=12)


def test_single_output_models_answer_bare_values_like_tf_serving():
    outputs = {"predictions": np.array([[0.5], [1.5]], np.float32)}
    assert format_tfserving(outputs, "row") == {"predictions": [[0.5], [1.5]]}
    assert format_tfserving(outputs, "column") == {"outputs": [[0.5], [1.5]]}
    tags = {"tags": np.array([["B-PER", ""]], dtype=object), "num_words": np.array([1], np.int32)}
    assert format_tfserving(tags, "row") == {"predictions": [{"tags": ["B-PER", ""], "num_words": 1}]}
    kserve = format_kserve({"predicted": np.array([[True, False]])}, model_name="m", model_version="3")
    assert kserve["outputs"] == [{"name": "predicted", "shape": [1, 2], "datatype": "BOOL", "data": [True, False]}]


def test_parse_limits_count_bytes_not_characters():
    assert parse_tfserving({"inputs": {"text": ["a"], "text_pair": ["b"]}}, num_segments=2, limits=LIMITS) == (
        ["a"], ["b"], "column")
    with pytest.raises(RequestError) as error:
        parse_tfserving({"instances": ["ééééééé"]}, num_segments=1, limits=LIMITS)  # 7 characters, 14 bytes
    assert error.value.status == 413 and "12 bytes" in error.value.message
    with pytest.raises(RequestError) as error:
        parse_tfserving({"instances": [{"text": "a"}, {"text": "b", "text_pair": "c"}]}, num_segments=2, limits=LIMITS)
    assert error.value.status == 400 and "same inputs" in error.value.message


def test_keys_from_environment_and_file(tmp_path):
    path = tmp_path / "keys.txt"
    path.write_text("# comment\nfile-key-0123456789abcdef\n\n", encoding="utf-8")
    keys = load_api_keys(path, environ={"TUNEKIT_API_KEYS": " env-key-0123456789abcdef ,"})
    assert keys == ("env-key-0123456789abcdef", "file-key-0123456789abcdef")
    checker = KeyChecker(keys)
    assert checker.check("Bearer file-key-0123456789abcdef") is None
    assert checker.check("bearer env-key-0123456789abcdef") is None
    assert checker.check("Bearer file-key-0123456789abcdeX") == "invalid_token"
    assert checker.check("Bearer ключ") == "invalid_token"  # non-ASCII tokens are compared, not crashed on
    assert checker.check(None) == checker.check("Token x") == "invalid_request"
    assert load_api_keys(environ={}) == ()



def test_bodies_are_measured_outside_their_strings_before_parsing():
    limits = Limits()  # 64 texts per request: at most 2,048 JSON values
    tricky = ['say \\"hi\\", [{' * 700, 'a\\\\"', "}]" * 2000, '\\\\\\"[', "é,ü" * 1000]  # backslashes, quotes
    texts = [tricky[i % len(tricky)] for i in range(64)]
    body = json.dumps({"inputs": [{"name": "text", "shape": [64, 1], "datatype": "BYTES",
                                   "data": [[text] for text in texts]}], "id": "x"}).encode()
    assert decode_json(body, limits)["inputs"][0]["data"] == [[text] for text in texts]
    assert decode_json(b'{"a": "\\"' + b"[" * 100 + b'"}', limits) == {"a": '"' + "[" * 100}
    assert decode_json(b"[" + b",".join([b"1"] * 2047) + b"]", limits) == [1] * 2047
    for body, status, message in [(b"[" + b",".join([b"1"] * 2048) + b"]", 413, "at most 2048"),
                                  (b"[" + b",".join([b'"a"'] * 2049) + b"]", 413, "at most 2048"),
                                  (b"[" * 33 + b"]" * 33, 400, "nested more than 32 levels"),
                                  (b'{"a": 1, "a": 2}', 400, "repeats the key 'a'"),
                                  (b'["caf\xe9"]', 400, "not valid UTF-8 (invalid continuation byte: byte 0xe9")]:
        with pytest.raises(RequestError) as error:
            decode_json(body, limits)
        assert error.value.status == status and message in error.value.message, error.value.message
