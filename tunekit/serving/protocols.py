"""The wire formats: TF Serving REST and KServe v2 (Open Inference Protocol) requests in, responses out.

`decode_json` turns a request body into JSON, refusing before it parses a body that a valid request cannot be
(more values or deeper nesting than any request needs, not UTF-8, a repeated key). Parsers turn the decoded JSON
into `(texts, pairs)` and enforce the limits (texts per request, bytes per text, texts that are not valid
Unicode), raising `RequestError(status, message)` with the client's mistake spelled out; formatters turn a dict of
numpy outputs into the protocol's JSON.

Example:

>>> limits = Limits(max_texts=64, max_text_bytes=10_000)
>>> parse_tfserving({"instances": ["A masterpiece."]}, num_segments=1, limits=limits)
(['A masterpiece.'], None, 'row')
>>> parse_kserve({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["Dull."]}]},
...              num_segments=1, limits=limits)
(['Dull.'], None, None)
"""

import dataclasses
import json

import numpy as np

from tunekit.formats import TEXT_INPUT_NAMES as TEXT_INPUTS
from tunekit.texts import validate_texts

MAX_JSON_DEPTH = 32  # a valid request nests 4 levels deep (KServe: body, inputs, tensor, [n, 1] data)
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))


class RequestError(Exception):
    """A client error (or an overload): answered with `status`, `{"error": message}` and `headers`."""

    def __init__(self, status, message, headers=None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


@dataclasses.dataclass(frozen=True)
class Limits:
    """Most texts per request and most UTF-8 bytes per text."""

    max_texts: int = 64
    max_text_bytes: int = 10_000

    def __post_init__(self):
        for name in ("max_texts", "max_text_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")

    def body_bytes(self):
        """A bound on a valid request body: every text at its limit, JSON-escaped (`\\uXXXX` is 6 bytes), plus
        room for the envelope."""
        return self.max_texts * len(TEXT_INPUTS) * (self.max_text_bytes * 6 + 64) + 4096

    def json_values(self):
        """A bound on the JSON values (strings, numbers, arrays, objects...) of a valid request: a valid request
        needs at most 3 per text and input, so this leaves ample room for optional fields (`id`, `outputs`,
        KServe `parameters`) while refusing a flood of tiny values that would take the server long to parse."""
        return 8 * self.max_texts * len(TEXT_INPUTS) + 1024


def _check_texts(values, what, limits):
    if not isinstance(values, list):
        raise RequestError(400, f"{what} must be a list of strings, got {type(values).__name__}.")
    if not values:
        raise RequestError(400, f"{what} is empty: send at least one text.")
    if len(values) > limits.max_texts:
        raise RequestError(413, f"{what} holds {len(values)} texts; the limit is {limits.max_texts} per request: "
                                "split the request.")
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise RequestError(400, f"{what}[{index}] must be a string, got {type(value).__name__}.")
    try:
        validate_texts(values, what)  # JSON's "\ud800" escapes decode to lone surrogates that no model can read
    except ValueError as error:
        raise RequestError(400, str(error)) from None
    for index, value in enumerate(values):
        if len(value) > limits.max_text_bytes // 4 and len(value.encode("utf-8")) > limits.max_text_bytes:
            raise RequestError(413, f"{what}[{index}] is longer than {limits.max_text_bytes} bytes (UTF-8): "
                                    "shorten the text.")
    return values


def decode_json(body, limits):
    """The JSON value of a request body (bytes).

    Before parsing, the body's structure is measured outside its strings (a few fast passes over the bytes): a body
    nested deeper than `MAX_JSON_DEPTH` is a 400, one holding more values than `limits.json_values()` a 413, so
    that no body can make the parser build millions of objects (seconds of work that would hold up every other
    request on the event loop). Then: a body that is not UTF-8 or not JSON, or an object that repeats a key (the
    last one would silently win), is a 400.
    """
    _check_structure(body, limits.json_values())
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise RequestError(400, f"The request body is not valid UTF-8 ({error.reason}: byte "
                                f"0x{body[error.start]:02x} at position {error.start}): send the JSON encoded as "
                                "UTF-8.") from None
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except _RepeatedKey as error:
        raise RequestError(400, f"The request body repeats the key {error.key!r} in one object: send each key "
                                "once.") from None
    except ValueError as error:
        raise RequestError(400, f"The request body is not valid JSON: {error}.") from None


class _RepeatedKey(ValueError):
    def __init__(self, key):
        super().__init__(key)
        self.key = key


def _unique_keys(pairs):
    value = dict(pairs)
    if len(value) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedKey(key)
            seen.add(key)
    return value


def _check_structure(body, max_values):
    """Raises a RequestError if `body`, as JSON, nests deeper than `MAX_JSON_DEPTH` or holds over `max_values`
    values, counting only outside strings, without parsing.

    Escaped backslashes and quotes are dropped first, so every remaining quote opens or closes a string and the
    even-numbered pieces between quotes are what lies outside strings. Each value but the first follows a ',' or an
    opening bracket, so those count the values. For a body that is not JSON the count is exact up to the first
    error, which is as far as the parser gets.
    """
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    strings = unescaped.count(b'"') // 2
    if strings > max_values:
        raise RequestError(413, f"The request body holds {strings} JSON strings; a request may hold at most "
                                f"{max_values} values: send fewer texts per request.")
    outside = b"".join(unescaped.split(b'"')[::2])
    containers = outside.count(b"[") + outside.count(b"{")
    if containers > MAX_JSON_DEPTH:
        # The brackets in order (all of them in a body within the limit, else enough to tell what is wrong first).
        brackets = outside.translate(None, _NOT_BRACKETS)[:2 * max_values]
        steps = (np.frombuffer(brackets, dtype=np.uint8) & 2).astype(np.int32) - 1  # "[", "{": +1; "]", "}": -1
        if int(np.cumsum(steps).max()) > MAX_JSON_DEPTH:
            raise RequestError(400, f"The request body is JSON nested more than {MAX_JSON_DEPTH} levels deep; a "
                                    "request needs 4: send the documented format.")
    values = containers + outside.count(b",") + 1
    if values > max_values:
        raise RequestError(413, f"The request body holds about {values} JSON values; a request may hold at most "
                                f"{max_values}: send fewer texts per request.")


def _segments(columns, num_segments, what):
    """(texts, pairs) from a dict of input name -> list, for a model of `num_segments` inputs."""
    names = TEXT_INPUTS[:num_segments]
    unknown = sorted(set(columns) - set(names))
    missing = [name for name in names if name not in columns]
    if unknown or missing:
        details = (f"; unknown {unknown}" if unknown else "") + (f"; missing {missing}" if missing else "")
        raise RequestError(400, f"{what} must name the model's inputs {list(names)}{details}.")
    texts = columns["text"]
    pairs = columns.get(TEXT_INPUTS[1]) if num_segments == 2 else None
    if pairs is not None and len(pairs) != len(texts):
        raise RequestError(400, f"{what}: 'text' has {len(texts)} values but 'text_pair' has {len(pairs)}.")
    return texts, pairs


def parse_tfserving(body, *, num_segments, limits):
    """(texts, pairs or None, "row" or "column") of a TF Serving `:predict` body (`instances` or `inputs`)."""
    if not isinstance(body, dict):
        raise RequestError(400, "The request body must be a JSON object with 'instances' or 'inputs'.")
    if ("instances" in body) == ("inputs" in body):
        raise RequestError(400, "The request body needs exactly one of 'instances' (row format) or 'inputs' "
                                "(column format).")
    signature = body.get("signature_name", "serving_default")
    if signature != "serving_default":
        raise RequestError(400, f"Unknown signature_name {signature!r}: this server serves 'serving_default'.")
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list):
            raise RequestError(400, f"'instances' must be a list, got {type(instances).__name__}.")
        if len(instances) > limits.max_texts:
            _check_texts(instances, "'instances'", limits)  # raises the 413
        if instances and all(isinstance(row, dict) for row in instances):
            columns = {}
            for index, row in enumerate(instances):
                if set(row) != set(instances[0]):
                    raise RequestError(400, f"'instances'[{index}] has keys {sorted(row)}, but 'instances'[0] "
                                            f"has {sorted(instances[0])}: every instance needs the same inputs.")
                for name, value in row.items():
                    columns.setdefault(name, []).append(value)
            texts, pairs = _segments(columns, num_segments, "Each instance")
        elif num_segments == 1:
            texts, pairs = instances, None
        else:
            raise RequestError(400, "This model takes text pairs: send instances as "
                                    "{\"text\": ..., \"text_pair\": ...} objects.")
        fmt, what = "row", "'instances'"
    else:
        inputs = body["inputs"]
        if isinstance(inputs, dict):
            texts, pairs = _segments(inputs, num_segments, "'inputs'")
        elif num_segments == 1:
            texts, pairs = inputs, None
        else:
            raise RequestError(400, "This model takes text pairs: send 'inputs' as "
                                    "{\"text\": [...], \"text_pair\": [...]}.")
        fmt, what = "column", "'inputs'"
    _check_texts(texts, what, limits)
    if pairs is not None:
        _check_texts(pairs, what + " text_pair", limits)
    return texts, pairs, fmt


def _jsonable(array):
    array = np.asarray(array)
    if array.dtype.kind in "SO":
        return np.vectorize(_decode, otypes=[object])(array).tolist() if array.size else array.tolist()
    return array.tolist()


def _decode(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def format_tfserving(outputs, fmt):
    """The `:predict` response: `{"predictions": [row, ...]}` (row format) or `{"outputs": {...}}` (column).

    As in TF Serving, a model with a single output answers bare values instead of `{name: value}` objects.
    """
    columns = {name: _jsonable(value) for name, value in outputs.items()}
    if len(columns) == 1:
        (values,) = columns.values()
        return {"outputs": values} if fmt == "column" else {"predictions": values}
    if fmt == "column":
        return {"outputs": columns}
    rows = len(next(iter(columns.values()))) if columns else 0
    return {"predictions": [{name: values[i] for name, values in columns.items()} for i in range(rows)]}


_DATATYPES = {"f": {4: "FP32", 8: "FP64", 2: "FP16"}, "i": {4: "INT32", 8: "INT64", 2: "INT16", 1: "INT8"},
              "u": {4: "UINT32", 8: "UINT64", 2: "UINT16", 1: "UINT8"}, "b": {1: "BOOL"}}


def kserve_datatype(dtype):
    """The KServe v2 datatype name of a numpy dtype (`BYTES` for strings)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "SOU":
        return "BYTES"
    return _DATATYPES[dtype.kind][dtype.itemsize]


def parse_kserve(body, *, num_segments, limits):
    """(texts, pairs or None, requested output names or None) of a KServe v2 `infer` body."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise RequestError(400, "The request body must be a JSON object with an 'inputs' list of "
                                "{name, shape, datatype, data} tensors.")
    columns = {}
    for index, tensor in enumerate(body["inputs"]):
        if not isinstance(tensor, dict) or not {"name", "shape", "datatype", "data"} <= set(tensor):
            raise RequestError(400, f"inputs[{index}] must be an object with name, shape, datatype and data.")
        name = tensor["name"]
        if not isinstance(name, str):
            raise RequestError(400, f"inputs[{index}] name must be a string, got {type(name).__name__}.")
        if tensor["datatype"] != "BYTES":
            raise RequestError(400, f"inputs[{index}] ({name!r}) must have datatype 'BYTES' (text), "
                                    f"got {tensor['datatype']!r}.")
        if name in columns:
            raise RequestError(400, f"inputs[{index}] repeats the input {name!r}: send each input once.")
        shape, data = tensor["shape"], tensor["data"]
        if not (isinstance(shape, list) and shape and all(isinstance(d, int) and d >= 0 for d in shape)
                and all(d == 1 for d in shape[1:])):
            raise RequestError(400, f"inputs[{index}] ({name!r}) shape must be [n] or [n, 1], got {shape!r}.")
        if isinstance(data, list) and len(data) > limits.max_texts:
            _check_texts(data, f"inputs[{index}] ({name!r}) data", limits)  # raises the 413
        if isinstance(data, list) and data and all(isinstance(row, list) and len(row) == 1 for row in data):
            data = [row[0] for row in data]
        if not isinstance(data, list) or len(data) != shape[0]:
            raise RequestError(400, f"inputs[{index}] ({name!r}) data must be a list of {shape[0]} strings "
                                    "matching its shape.")
        columns[name] = _check_texts(data, f"inputs[{index}] ({name!r}) data", limits)
    texts, pairs = _segments(columns, num_segments, "'inputs'")
    requested = body.get("outputs")
    if requested is not None:
        if not isinstance(requested, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str)
                                                      for o in requested):
            raise RequestError(400, "'outputs' must be a list of {\"name\": ...} objects.")
        requested = [output["name"] for output in requested]
    return texts, pairs, requested


def format_kserve(outputs, *, model_name, model_version, request_id=None, requested=None):
    """The `infer` response: each output as `{name, shape, datatype, data}` with `data` flattened row-major."""
    if requested is not None:
        unknown = sorted(set(requested) - set(outputs))
        if unknown:
            raise RequestError(400, f"Unknown outputs {unknown}; this model has {sorted(outputs)}.")
        outputs = {name: outputs[name] for name in requested}
    tensors = []
    for name, value in outputs.items():
        value = np.asarray(value)
        tensors.append({"name": name, "shape": list(value.shape), "datatype": kserve_datatype(value.dtype),
                        "data": _jsonable(value.reshape(-1))})
    response = {"model_name": model_name, "model_version": model_version, "outputs": tensors}
    if request_id is not None:
        response["id"] = request_id
    return response
