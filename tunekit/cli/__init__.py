"""The `tunekit` command: train, evaluate, predict, export, list backbones (and serve) without writing Python.

Every subcommand maps onto the Python API: `train` reads a YAML or JSON config whose sections hold the
arguments of `tunekit.load_backbone` (`backbone:`), `tunekit.attach_head` (`head:`) and `tunekit.Trainer`
(`trainer:`), plus the data (`data:`) and where to write (`output:`, `export:`); flags override it.

Exit codes: 0 success; 2 a usage or configuration error (bad flag, unknown config key, missing file, bad
value: the message goes to stderr, without a traceback, before any training starts); 1 a failure while
working (add `--traceback` to see where); 130 interrupted. Progress goes to stderr, results (JSON) to stdout.

Example:

>>> from tunekit.cli import main
>>> main(["list-backbones"])                                                   # doctest: +ELLIPSIS
albert_en_base
...
0
>>> main(["train", "--config", "missing.yaml"])  # stderr: config file 'missing.yaml' does not exist.
2
"""

import argparse
import contextlib
import inspect
import json
import math
import os
import re
import sys
import tempfile
import traceback

PROG = "tunekit"

EXAMPLES = """\
examples:
  tunekit list-backbones
  tunekit train --backbone minilm-l6 --train reviews.csv --labels negative,positive --epochs 1 --output my_model
  tunekit train --config train.yaml --set trainer.epochs=2 --export my_serving
  tunekit train --backbone minilm-l6 --task token_classification --train eng.train --output ner_model
  tunekit evaluate my_model test.csv
  tunekit predict my_model reviews.txt --output predictions.jsonl
  tunekit predict my_serving reviews.csv --text-column review     # an exported model (SavedModel or TFLite)
  echo "A masterpiece." | tunekit predict my_model
  tunekit export my_model my_serving
  tunekit export my_model my_int8 --tflite int8 --validation dev.csv   # LiteRT, int8 weights
  tunekit serve my_serving --port 8500 --api-key-file keys.txt

A train config (YAML or JSON; keys are the arguments of load_backbone, attach_head and Trainer):

  backbone: {handle: minilm-l6, seq_length: 128}
  head: {task: classification, labels: [negative, positive]}
  trainer: {learning_rate: 5.0e-5, epochs: 1, batch_size: 16, seed: 0}
  data:
    train: reviews.csv            # .csv / .jsonl / CoNLL file, or {dataset: imdb, split: train, limit: 500}
    validation: {path: dev.jsonl, text_column: review}
    test: imdb:test               # evaluated after training; metrics printed as JSON
  output: my_model
  export: my_serving              # optional

exit codes: 0 ok, 1 failure while working (--traceback shows where), 2 usage or config error, 130 interrupted.
See docs/cli.md.
"""

CONFIG_SECTIONS = ("backbone", "head", "trainer", "data", "output", "export")
SPLITS = ("train", "validation", "test")
DATA_OPTIONS = ("path", "format", "text_column", "label_column", "text_pair_column", "limit", "seed", "column",
                "dataset")
FILE_FORMATS = ("csv", "jsonl", "conll", "text")
NAMED_DATASETS = ("imdb", "sst2", "rt_polarity", "mrpc", "stsb", "rte")
# Trainer arguments that take Python objects, not config values.
NOT_CONFIGURABLE = {"trainer": ("callbacks",)}
# PyYAML reads `5e-5` (no dot) as a string; such values are numbers.
_SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
PREDICT_CHUNK = 512


class UsageError(Exception):
    """A mistake in the command line, the config or the input files: exit code 2, message without traceback."""


@contextlib.contextmanager
def user_errors():
    """Turns the library's input-validation errors (raised before any work) into `UsageError`."""
    try:
        yield
    except (ValueError, TypeError, FileNotFoundError, NotADirectoryError, PermissionError, KeyError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        raise UsageError(str(message)) from error
    except ImportError as error:
        # Missing optional packages (a backbone package, an extra): the message says what to install.
        raise UsageError(str(error)) from error


def import_tensorflow(args):
    """Imports TensorFlow with its native log lines (oneDNN, CUDA probing) kept off stderr, unless `--traceback`
    asks for everything; TensorFlow's failures still raise Python exceptions."""
    if "tensorflow" in sys.modules:
        return
    if not args.traceback:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow

            tensorflow.config.list_physical_devices()  # probes the devices (CUDA) now, while muted
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def to_json(value):
    """`json.dumps` default for numpy scalars and arrays in metrics."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def status(args, message):
    """A progress line on stderr (silenced by --quiet)."""
    if not getattr(args, "quiet", False):
        print(f"{PROG}: {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------------------------------------------------


def read_config(path):
    """The config file as a dict (YAML for .yaml/.yml, JSON otherwise)."""
    if not os.path.isfile(path):
        raise UsageError(f"config file {path!r} does not exist.")
    with open(path, encoding="utf-8") as file:
        text = file.read()
    if path.endswith((".yaml", ".yml")):
        import yaml

        try:
            config = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise UsageError(f"{path} is not valid YAML: {error}") from None
    else:
        try:
            config = json.loads(text)
        except json.JSONDecodeError as error:
            raise UsageError(f"{path} is not valid JSON: {error}") from None
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise UsageError(f"{path} must hold a mapping of sections ({', '.join(CONFIG_SECTIONS)}).")
    return config


def parse_value(text):
    """A `--set` value: YAML/JSON scalars and lists (`2`, `5e-5`, `[a, b]`, `null`), otherwise the string."""
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:  # e.g. "a: b: c": a plain string
        value = text
    if isinstance(value, str) and _SCIENTIFIC.fullmatch(value):
        return float(value)
    return value


def apply_override(config, assignment):
    """Applies `SECTION.KEY=VALUE` (or `output=DIR`) from `--set` to `config`."""
    key, separator, text = assignment.partition("=")
    if not separator or not key:
        raise UsageError(f"--set expects SECTION.KEY=VALUE (e.g. trainer.epochs=2), got {assignment!r}.")
    parts = key.split(".")
    target = config
    for part in parts[:-1]:
        if target.get(part) is None:
            target[part] = {}
        elif isinstance(target[part], str) and part in ("backbone", "head"):
            target[part] = {"handle" if part == "backbone" else "task": target[part]}
        elif isinstance(target[part], str) and part in SPLITS:
            target[part] = source_mapping(target[part])
        elif not isinstance(target[part], dict):
            raise UsageError(f"--set {assignment}: {part!r} is not a section of the config.")
        target = target[part]
    target[parts[-1]] = parse_value(text)


def section(config, name, *, shorthand=None):
    """A config section as a new dict; a bare string stands for its `shorthand` key (`backbone: minilm-l6`)."""
    value = config.get(name)
    if value is None:
        return {}
    if isinstance(value, str) and shorthand:
        return {shorthand: value}
    if not isinstance(value, dict):
        raise UsageError(f"config section {name!r} must be a mapping, got {value!r}.")
    return dict(value)


def check_keys(name, values, function, *, skip=1):
    """Raises `UsageError` for keys that are not keyword arguments of `function` (after `skip` positionals)."""
    parameters = list(inspect.signature(function).parameters)[skip:]
    allowed = [p for p in parameters if p not in NOT_CONFIGURABLE.get(name, ())]
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise UsageError(
            f"unknown key(s) {', '.join(unknown)} in config section {name!r}; it takes: {', '.join(allowed)}."
        )
    for key, value in values.items():
        if isinstance(value, str) and _SCIENTIFIC.fullmatch(value):
            values[key] = float(value)
    return values


def check_sections(config):
    unknown = sorted(set(config) - set(CONFIG_SECTIONS))
    if unknown:
        raise UsageError(f"unknown config section(s) {', '.join(unknown)}; sections are: {', '.join(CONFIG_SECTIONS)}.")


def build_train_config(args):
    """The train config: the file (if any), then flags, then `--set` overrides."""
    config = read_config(args.config) if args.config else {}
    check_sections(config)
    backbone = section(config, "backbone", shorthand="handle")
    head = section(config, "head", shorthand="task")
    trainer = section(config, "trainer")
    data = section(config, "data")
    for target, values in (
        (backbone, {"handle": args.backbone, "preprocessor": args.preprocessor, "seq_length": args.seq_length}),
        (head, {"task": args.task, "labels": args.labels, "text_pairs": args.text_pairs or None}),
        (trainer, {"learning_rate": args.learning_rate, "epochs": args.epochs, "batch_size": args.batch_size,
                   "seed": args.seed, "backup_dir": args.backup_dir}),
    ):
        target.update({key: value for key, value in values.items() if value is not None})
    for split in SPLITS:
        if getattr(args, split) is not None:
            data[split] = getattr(args, split)
    for option in ("text_column", "label_column", "text_pair_column", "data_dir"):
        if getattr(args, option) is not None:
            data[option] = getattr(args, option)
    config = {"backbone": backbone, "head": head, "trainer": trainer, "data": data,
              "output": args.output or config.get("output"), "export": args.export or config.get("export")}
    for assignment in args.set or ():
        apply_override(config, assignment)
    check_sections(config)
    for name in ("backbone", "head", "trainer", "data"):
        config[name] = section(config, name, shorthand={"backbone": "handle", "head": "task"}.get(name))
    if "handle" not in config["backbone"]:
        raise UsageError("no backbone: pass --backbone NAME (see `tunekit list-backbones`) or backbone.handle in the "
                         "config.")
    if "train" not in config["data"]:
        raise UsageError("no training data: pass --train FILE (CSV, JSONL or CoNLL) or data.train in the config.")
    if not config["output"]:
        raise UsageError("no output folder: pass --output DIR (or output: in the config) to save the trained model.")
    return config


# ----------------------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------------------


def source_mapping(text):
    """`{"path": text}`, or `{"dataset": NAME, "split": SPLIT}` for `NAME[:SPLIT]` of a named dataset."""
    name, _, split = text.partition(":")
    if os.path.exists(text) or name not in NAMED_DATASETS:
        return {"path": text}
    return {"dataset": name, **({"split": split} if split else {})}


def data_spec(value, defaults):
    """A data source as a dict: a path or `NAME[:SPLIT]` string, or a mapping, merged over `defaults`."""
    if isinstance(value, str):
        spec = source_mapping(value)
    elif isinstance(value, dict):
        spec = dict(value)
    else:
        raise UsageError(f"a data source must be a file path, DATASET:SPLIT or a mapping, got {value!r}.")
    if "dataset" in spec:
        if "data_dir" in defaults and "data_dir" not in spec and spec["dataset"] != "imdb":
            spec["data_dir"] = defaults["data_dir"]
        if spec["dataset"] in NAMED_DATASETS and spec["dataset"] != "imdb" and "data_dir" not in spec:
            raise UsageError(
                f"the dataset {spec['dataset']!r} is read from its downloaded files: pass --data-dir DIR, the folder "
                "holding them (GLUE's train.tsv / dev.tsv, or the files named in tunekit.datasets), or "
                "data.data_dir in the config. Only imdb needs no --data-dir (a sample ships with tunekit)."
            )
        return spec
    if "path" not in spec:
        raise UsageError(f"data source {value!r} needs path: FILE or dataset: NAME ({', '.join(NAMED_DATASETS)}).")
    unknown = sorted(set(spec) - set(DATA_OPTIONS))
    if unknown:
        raise UsageError(
            f"unknown data option(s) {', '.join(unknown)}; a file source takes: {', '.join(DATA_OPTIONS)}."
        )
    for key in ("text_column", "label_column", "text_pair_column"):
        if key in defaults and key not in spec:
            spec[key] = defaults[key]
    if not os.path.isfile(spec["path"]):
        raise UsageError(f"data file {spec['path']!r} does not exist.")
    return spec


def file_format(path, given=None):
    """`csv`, `jsonl`, `conll` or `text` from `given` or the file name (gzip suffix ignored)."""
    if given is not None:
        if given not in FILE_FORMATS:
            raise UsageError(f"unknown data format {given!r}; choose one of {', '.join(FILE_FORMATS)}.")
        return given
    name = os.path.basename(path).lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    if name.endswith(".txt"):
        return "text"
    return "conll"


def labelled_format(path, given=None):
    """The format of a labelled file: as `file_format`, but a `.txt` file is CoNLL (plain lines have no labels)."""
    fmt = file_format(path, given)
    return "conll" if fmt == "text" else fmt


def read_labelled(spec, *, task=None):
    """`(x, labels, label_names)` from a data spec; `label_names` is known for named datasets (IMDB) only.

    For `task="multilabel"`, a text's labels are one string with the names separated by `|` (`"sports|tech"`).
    """
    from tunekit import datasets

    spec = dict(spec)
    if "dataset" in spec:
        name = spec.pop("dataset")
        if name not in NAMED_DATASETS:
            raise UsageError(f"unknown dataset {name!r}; named datasets: {', '.join(NAMED_DATASETS)}.")
        with user_errors():
            if name in ("mrpc", "stsb", "rte"):
                x, y = datasets.sentence_pairs(name, **spec)
            else:
                x, y = getattr(datasets, name)(**spec)
        return x, y, list(datasets.IMDB_LABELS) if name == "imdb" else None
    path = spec.pop("path")
    fmt = labelled_format(path, spec.pop("format", None))
    with user_errors():
        if task == "token_classification" or fmt == "conll":
            if fmt != "conll":
                raise UsageError(
                    f"token_classification reads CoNLL files (one word and tag per line); {path} is {fmt}."
                )
            column = spec.pop("column", -1)
            return (*datasets.read_conll(path, column=column), None)
        spec.pop("column", None)
        reader = datasets.read_csv if fmt == "csv" else datasets.read_jsonl
        x, y = reader(path, **spec)
    if task == "multilabel" and y.dtype.kind in "OUS":
        y = [[name for name in str(names).split("|") if name] for names in y]
    return x, y, None


def infer_head(head, data_format_is_conll, labels, label_names):
    """Fills in the task and its label names / class count from the training labels when the config leaves them out."""
    import numpy as np

    head = dict(head)
    if "task" not in head:
        if data_format_is_conll:
            head["task"] = "token_classification"
        elif np.asarray(labels).dtype.kind == "f":
            head["task"] = "regression"
        else:
            head["task"] = "classification"
    task = head["task"]
    if task == "token_classification" and head.get("labels") is None:
        head["labels"] = sorted({tag for tags in labels for tag in tags}, key=lambda tag: (tag != "O", tag))
    elif task == "multilabel" and head.get("labels") is None and head.get("num_classes") is None:
        head["labels"] = sorted({name for names in labels for name in names})
    elif task == "classification" and head.get("labels") is None and head.get("num_classes") is None:
        array = np.asarray(labels)
        if label_names is not None:
            head["labels"] = label_names
        elif array.dtype.kind in "OUS":
            head["labels"] = sorted({str(label) for label in array})
        elif array.dtype.kind in "iu":
            head["num_classes"] = max(2, int(array.max()) + 1)
    if isinstance(head.get("labels"), str):
        head["labels"] = [name.strip() for name in head["labels"].split(",") if name.strip()]
    return head


# ----------------------------------------------------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------------------------------------------------


def check_distinct(first, second, what):
    """Raises `UsageError` when two folders are the same, or one lies inside the other (`what` names them)."""
    from tunekit.files import user_path

    a, b = os.path.realpath(user_path(first)), os.path.realpath(user_path(second))
    if a == b or a.startswith(b.rstrip(os.sep) + os.sep) or b.startswith(a.rstrip(os.sep) + os.sep):
        raise UsageError(f"{what} are the same folder ({first!r}, {second!r}), or one lies inside the other: the "
                         "second write would replace the first. Give two separate folders, e.g. my_model and "
                         "my_model_serving.")


def command_train(args):
    config = build_train_config(args)
    from tunekit.files import check_replaceable

    if config["export"]:
        check_distinct(config["output"], config["export"], "--output and --export")
    for key in ("backup_dir", "log_dir", "checkpoint_dir"):
        for target in ("output", "export"):
            if config["trainer"].get(key) and config[target]:
                check_distinct(config[target], config["trainer"][key], f"--{target} and trainer.{key}")
    for key, kind in (("output", "model"), ("export", "export")):
        if config[key]:
            with user_errors():
                check_replaceable(config[key], kind)
    data = config["data"]
    options = ("text_column", "label_column", "text_pair_column", "data_dir")
    defaults = {key: data[key] for key in options if key in data}
    unknown = sorted(set(data) - set(SPLITS) - set(defaults))
    if unknown:
        raise UsageError(
            f"unknown key(s) {', '.join(unknown)} in config section 'data'; it takes: {', '.join(SPLITS)}, "
            "text_column, label_column, text_pair_column, data_dir."
        )
    specs = {split: data_spec(data[split], defaults) for split in SPLITS if split in data}

    status(args, "loading TensorFlow")
    import_tensorflow(args)
    import tunekit as tk

    backbone_args = check_keys("backbone", config["backbone"], tk.load_backbone, skip=0)
    head_args = check_keys("head", config["head"], tk.attach_head)
    trainer_args = check_keys("trainer", config["trainer"], tk.Trainer)
    # Keras' progress bar; one line per epoch where stderr is a log file rather than a terminal.
    trainer_args.setdefault("verbose", 0 if args.quiet else 1 if sys.stderr.isatty() else 2)

    splits = {}
    for split, spec in specs.items():
        x, y, names = read_labelled(spec, task=head_args.get("task"))
        splits[split] = (x, y)
        if split == "train":
            is_conll = "path" in spec and labelled_format(spec["path"], spec.get("format")) == "conll"
            head_args = infer_head(head_args, is_conll, y, names)
            if isinstance(x, tuple) and "text_pairs" not in head_args:
                head_args["text_pairs"] = True
        status(args, f"{split}: {len(y)} examples from {spec.get('path') or spec.get('dataset')}")

    with user_errors():
        status(args, f"loading backbone {backbone_args['handle']}")
        backbone = tk.load_backbone(**backbone_args)
        model = tk.attach_head(backbone, **head_args)
        trainer = tk.Trainer(model, **trainer_args)
        for split, (_, labels) in splits.items():
            try:
                model.task.encode_labels(labels)
            except ValueError as error:
                raise ValueError(f"{split} data: {error}") from error

    status(args, f"training ({head_args['task']}, {trainer.epochs} epoch(s), batch size {trainer.batch_size})")
    validation = splits.get("validation")
    with contextlib.redirect_stdout(sys.stderr):  # Keras' progress bar; stdout is for the result
        trainer.fit(*splits["train"], validation_data=validation)
    result = {"model": trainer.save(config["output"])}
    status(args, f"saved the model to {result['model']}")
    if config["export"]:
        result["export"] = trainer.export(config["export"])
        status(args, f"exported a serving SavedModel to {result['export']}")
    if "test" in splits:
        status(args, "evaluating on the test data")
        result["test"] = trainer.evaluate(*splits["test"])
    print(json.dumps(result, default=to_json))
    return 0


def load_saved_model(path, args):
    path = os.path.expanduser(path)
    if not os.path.exists(path):
        raise UsageError(f"model {path!r} does not exist.")
    status(args, f"loading {path}")
    import_tensorflow(args)
    import tunekit as tk

    with user_errors():
        return tk.load_model(path)


def command_evaluate(args):
    spec = data_spec(args.data, {key: getattr(args, key) for key in ("text_column", "label_column",
                                                                       "text_pair_column", "data_dir")
                                 if getattr(args, key) is not None})
    if args.format is not None and "path" in spec:
        spec["format"] = args.format
    if args.limit is not None:
        spec["limit"] = args.limit
    model = load_saved_model(args.model, args)
    import tunekit as tk

    x, y, _ = read_labelled(spec, task=model.task.name)
    trainer = tk.Trainer(model, batch_size=args.batch_size, verbose=0)
    status(args, f"evaluating on {len(y)} examples")
    with user_errors():  # label problems are found before any work
        model.task.encode_labels(y)
    metrics = trainer.evaluate(x, y)
    print(json.dumps(metrics, default=to_json))
    return 0


def input_lines(source):
    """The lines of an input file (gzip transparent) or of stdin (`-`)."""
    if source == "-":
        data = sys.stdin.buffer.read()
        try:
            return data.decode("utf-8").splitlines()
        except UnicodeDecodeError as error:
            line = data[:error.start].count(b"\n") + 1
            raise UsageError(
                f"stdin is not valid UTF-8: byte {data[error.start]:#04x} on line {line}. Convert it first, e.g. "
                "iconv -f latin1 -t utf-8 input.txt | tunekit predict MODEL") from None
    if not os.path.isfile(source):
        raise UsageError(f"input file {source!r} does not exist.")
    from tunekit.datasets.files import open_text

    with open_text(source) as file:
        return file.read().splitlines()


def read_unlabelled(source, args, per_token):
    """`(records, x)`: the echo fields of every input (`text`, `text_pair` or `words`) and the model's input."""
    fmt = (args.format or "text") if source == "-" else file_format(source, args.format)
    lines = input_lines(source)
    if fmt == "conll":
        words = conll_words(lines)
        if not per_token:
            raise UsageError(f"{source} is read as CoNLL (one word per line), which only token classification takes; "
                             "pass --format text, csv or jsonl.")
        return [{"words": sentence} for sentence in words], words
    if fmt == "text":
        texts, pairs = [line for line in lines if line.strip()], None
        if args.text_pair_column:
            raise UsageError("--text-pair-column needs CSV or JSONL input.")
    else:
        with user_errors():
            texts, pairs = read_columns(lines, source, fmt, args.text_column, args.text_pair_column)
    if not texts:
        raise UsageError(f"{source}: no texts to predict.")
    if per_token:
        words = [text.split() for text in texts]
        return [{"text": text, "words": sentence} for text, sentence in zip(texts, words)], words
    if pairs is None:
        return [{"text": text} for text in texts], texts
    return [{"text": a, "text_pair": b} for a, b in zip(texts, pairs)], (texts, pairs)


def conll_words(lines):
    """The sentences (lists of words: first column) of CoNLL lines; `-DOCSTART-` lines are dropped."""
    sentences, words = [], []
    for line in [*lines, ""]:
        fields = line.split()
        if fields and fields[0] != "-DOCSTART-":
            words.append(fields[0])
        elif words:
            sentences.append(words)
            words = []
    return sentences


def read_columns(lines, source, fmt, text_column, text_pair_column):
    """The text column (and pair column) of CSV or JSONL lines; labels are not needed."""
    names = [name for name in (text_column, text_pair_column) if name is not None]
    columns = {name: [] for name in names}
    if fmt == "csv":
        import csv

        rows = [row for row in csv.reader(lines) if row]
        if not rows:
            raise ValueError(f"{source} is empty.")
        header = rows[0]
        for name in names:
            if name not in header:
                raise ValueError(f"{source} has no column {name!r}; its columns are {header}.")
            index = header.index(name)
            columns[name] = [row[index] for row in rows[1:]]
    else:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{source}, line {number}: not valid JSON ({error.msg}).") from None
            for name in names:
                if not isinstance(record, dict) or not isinstance(record.get(name), str):
                    raise ValueError(f"{source}, line {number}: no string field {name!r}.")
                columns[name].append(record[name])
    return columns[text_column], columns[text_pair_column] if text_pair_column else None


def prediction_records(task, outputs):
    """JSON-ready predictions of one chunk: label and per-label probabilities, values, or tags."""
    import numpy as np

    if task.name == "token_classification":
        return [{"tags": tags} for tags in task.decode(outputs)]
    outputs = np.asarray(outputs)
    if task.name == "classification":
        names = task.labels or list(range(task.num_classes))
        return [{"label": names[int(np.argmax(row))],
                 "probabilities": {str(name): float(p) for name, p in zip(names, row)}} for row in outputs]
    if task.name == "multilabel":
        names = task.labels or [str(i) for i in range(task.num_labels)]
        return [{"labels": [name for name, p, t in zip(names, row, task.thresholds) if p >= t],
                 "probabilities": {name: float(p) for name, p in zip(names, row)}} for row in outputs]
    values = outputs.reshape(len(outputs), -1)
    return [{"value": float(row[0])} if len(row) == 1 else {"values": [float(v) for v in row]} for row in values]


def artifact_records(artifact, outputs):
    """JSON-ready predictions of an exported artifact (`tunekit.deploy.load_artifact`), shaped as
    `prediction_records` shapes a saved model's."""
    import numpy as np

    name = artifact.task.get("name")
    if name == "token_classification":
        counts = outputs["num_words"]
        return [{"tags": [str(tag) for tag in tags[:count]]} for tags, count in zip(outputs["tags"], counts)]
    if name == "regression":
        values = np.asarray(outputs["predictions"]).reshape(len(outputs["predictions"]), -1)
        return [{"value": float(row[0])} if len(row) == 1 else {"values": [float(v) for v in row]} for row in values]
    probabilities = np.asarray(outputs["probabilities"])
    names = artifact.labels or [str(i) for i in range(probabilities.shape[-1])]
    records = [{"probabilities": {label: float(p) for label, p in zip(names, row)}} for row in probabilities]
    for index, record in enumerate(records):
        if name == "multilabel":
            record["labels"] = [names[j] for j in np.flatnonzero(outputs["predicted"][index])]
        else:
            record["label"] = str(outputs["label"][index]) if "label" in outputs else int(outputs["class_id"][index])
    return records


def open_predictor(path, args):
    """`(per_token, num_segments, predict)` for a saved model folder or an exported artifact folder (SavedModel
    export or TFLite); `predict(x)` gives one JSON-ready dict per input."""
    path = os.path.expanduser(path)
    if not os.path.exists(path):
        raise UsageError(f"model {path!r} does not exist.")
    import_tensorflow(args)
    from tunekit.saving import MODEL_FILE

    if os.path.isfile(os.path.join(path, MODEL_FILE)) or not os.path.isdir(path):
        model = load_saved_model(path, args)
        import tunekit as tk

        trainer = tk.Trainer(model, batch_size=args.batch_size, verbose=0)
        return model.task.per_token, model.num_segments, lambda x: prediction_records(model.task, trainer.predict(x))
    status(args, f"loading the exported model {path}")
    from tunekit.deploy import load_artifact

    with user_errors():
        artifact = load_artifact(path)
    per_token = artifact.task.get("name") == "token_classification"

    def predict(x):
        if per_token:
            x = [" ".join(words) for words in x]
        texts, pairs = x if isinstance(x, tuple) else (x, None)
        return artifact_records(artifact, artifact.predict(texts, pairs, batch_size=args.batch_size))

    return per_token, artifact.num_segments, predict


def command_predict(args):
    if args.output:
        parent = os.path.dirname(os.path.abspath(args.output))
        if os.path.isdir(args.output):
            raise UsageError(f"--output {args.output!r} is a folder; give a file name, e.g. predictions.jsonl.")
        if os.path.lexists(args.output):
            raise UsageError(f"--output {args.output!r} already exists, and tunekit never replaces a file it may not "
                             "have written: give a new file name, or delete that file first.")
        if not os.path.isdir(parent):
            raise UsageError(f"--output: the folder {parent!r} does not exist.")
    per_token, num_segments, predict = open_predictor(args.model, args)
    records, x = read_unlabelled(args.input, args, per_token)
    if isinstance(x, tuple) and num_segments != 2:
        raise UsageError("--text-pair-column was given but the model takes single texts.")
    if not isinstance(x, tuple) and num_segments == 2:
        raise UsageError("the model takes text pairs: pass --text-pair-column NAME (CSV or JSONL input).")
    output = sys.stdout
    temporary = None
    if args.output:
        parent = os.path.dirname(os.path.abspath(args.output))
        handle, temporary = tempfile.mkstemp(dir=parent, prefix=f".{os.path.basename(args.output)}.partial-")
        output = os.fdopen(handle, "w", encoding="utf-8")
    total = len(records)
    try:
        for start in range(0, total, PREDICT_CHUNK):
            stop = min(start + PREDICT_CHUNK, total)
            chunk = (x[0][start:stop], x[1][start:stop]) if isinstance(x, tuple) else x[start:stop]
            for record, prediction in zip(records[start:stop], predict(chunk)):
                output.write(json.dumps({**record, **prediction}, ensure_ascii=False) + "\n")
            output.flush()
            if total > PREDICT_CHUNK:
                status(args, f"predicted {stop}/{total}")
        if temporary:
            output.close()
            os.link(temporary, args.output)  # unlike a rename, fails if the file appeared meanwhile
            os.unlink(temporary)
            temporary = None
            status(args, f"wrote {total} predictions to {args.output}")
    finally:
        if temporary:
            output.close()
            os.remove(temporary)
    return 0


def command_export(args):
    from tunekit.files import check_replaceable

    check_distinct(args.model, args.output, "the model and the export")
    with user_errors():
        check_replaceable(args.output, "export" if args.tflite is None else "tflite")
    if args.tflite is None and args.validation is not None:
        raise UsageError("--validation measures what compression costs: it goes with --tflite.")
    model = load_saved_model(args.model, args)
    import tunekit as tk

    if args.tflite is None:
        status(args, f"exporting to {args.output}")
        path = tk.export_model(model, args.output)
        print(json.dumps({"export": path}))
        return 0
    from tunekit.deploy import export_tflite

    validation = None
    if args.validation is not None:
        spec = data_spec(args.validation, {key: getattr(args, key) for key in ("text_column", "label_column",
                                                                               "text_pair_column", "data_dir")
                                           if getattr(args, key) is not None})
        x, y, _ = read_labelled(spec, task=model.task.name)
        validation = (x, y)
    status(args, f"converting to a {args.tflite} LiteRT model in {args.output}")
    with user_errors():  # a model whose ops cannot convert, labels that do not fit the model
        path = export_tflite(model, args.output, compression=args.tflite, validation_data=validation,
                             base=os.path.basename(os.path.normpath(args.model)))
    from tunekit.files import FORMAT_VERSIONS, read_manifest

    manifest = read_manifest(path, what="TFLite artifact", format_version={"tflite": FORMAT_VERSIONS["tflite"]})
    print(json.dumps({"export": path, "compression": args.tflite, "size_bytes": manifest.get("size_bytes"),
                      "accuracy": manifest.get("accuracy")}, default=to_json))
    return 0


def command_list_backbones(args):
    from tunekit.backbones.registry import REGISTRY

    for name in sorted(REGISTRY):
        print(f"{name}\t{REGISTRY[name].encoder}" if args.verbose else name)
    return 0


# ----------------------------------------------------------------------------------------------------------------------
# Parser
# ----------------------------------------------------------------------------------------------------------------------


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _add_text_columns(parser):
    parser.add_argument("--text-column", metavar="NAME",
                        help="column (CSV) or field (JSONL) of the texts (default: text)")
    parser.add_argument("--text-pair-column", metavar="NAME",
                        help="column of the second texts, for models on text pairs")


def _add_common_options(parser, default):
    parser.add_argument("--traceback", action="store_true", default=default,
                        help="show the full traceback of a failure, and TensorFlow's own log")
    parser.add_argument("-q", "--quiet", action="store_true", default=default, help="no progress messages on stderr")


def build_parser():
    from tunekit import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Fine-tune BERT-family text encoders, evaluate, predict and export, from the command line.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_common_options(parser, default=False)
    common = argparse.ArgumentParser(add_help=False)
    _add_common_options(common, default=argparse.SUPPRESS)  # also accepted after the command
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = commands.add_parser(
        "train", parents=[common], epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
        help="fine-tune a backbone on a CSV/JSONL/CoNLL file or a named dataset; save (and export) it",
        description="Fine-tune a backbone and save the model. Settings come from --config (YAML or JSON with the "
                    "sections backbone, head, trainer, data, output, export), then the flags, then --set.")
    train.add_argument("--config", metavar="FILE", help="YAML (.yaml/.yml) or JSON config file")
    train.add_argument("--backbone", metavar="HANDLE",
                       help="short name (tunekit list-backbones), TF Hub URL, or local folder")
    train.add_argument("--preprocessor", metavar="HANDLE", help="preprocessor handle for a backbone that needs one")
    train.add_argument("--seq-length", type=_positive_int, metavar="N", help="tokens per text (default 128)")
    train.add_argument("--task", choices=("classification", "multilabel", "regression", "token_classification"),
                       help="default: token_classification for CoNLL data, regression for float labels, "
                            "classification otherwise")
    train.add_argument("--labels", metavar="A,B,...",
                       help="comma-separated label names in output order (default: from the data)")
    train.add_argument("--text-pairs", action="store_true", help="the task is on pairs of texts")
    train.add_argument("--epochs", type=_positive_int, metavar="N", help="passes over the training data")
    train.add_argument("--batch-size", type=_positive_int, metavar="N", help="texts per training step")
    train.add_argument("--learning-rate", type=_float, metavar="LR", help="peak learning rate (after warmup)")
    train.add_argument("--seed", type=int, metavar="N", help="makes the run repeatable")
    train.add_argument("--backup-dir", metavar="DIR",
                       help="keep crash-safe backups of the run here; running the same command again after a crash "
                            "resumes from the last one (trainer.backup_dir)")
    train.add_argument("--train", metavar="DATA",
                       help=f"training data: a .csv, .jsonl or CoNLL file, or DATASET[:SPLIT] "
                            f"({', '.join(NAMED_DATASETS)})")
    train.add_argument("--validation", metavar="DATA", help="validation data, evaluated after each epoch")
    train.add_argument("--test", metavar="DATA",
                       help="test data, evaluated after training (metrics in the JSON result)")
    _add_text_columns(train)
    train.add_argument("--label-column", metavar="NAME",
                       help="column (CSV) or field (JSONL) of the labels (default: label)")
    train.add_argument("--data-dir", metavar="DIR",
                       help="folder of a named dataset's files (sst2, rt_polarity, mrpc, ...)")
    train.add_argument("--output", metavar="DIR",
                       help="folder to save the trained model to (required here or in the config)")
    train.add_argument("--export", metavar="DIR", help="also export a serving SavedModel to this folder")
    train.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                       help="override one config value, e.g. --set trainer.weight_decay=0.0 (repeatable)")
    train.set_defaults(run=command_train)

    evaluate = commands.add_parser(
        "evaluate", parents=[common], help="metrics of a saved model on labelled data, printed as JSON",
        description="Evaluate a saved model (tunekit train / tunekit.save_model) on labelled data.")
    evaluate.add_argument("model", help="folder of a saved model")
    evaluate.add_argument("data", help="a .csv, .jsonl or CoNLL file, or DATASET[:SPLIT]")
    _add_text_columns(evaluate)
    evaluate.add_argument("--label-column", metavar="NAME",
                          help="column (CSV) or field (JSONL) of the labels (default: label)")
    evaluate.add_argument("--format", choices=FILE_FORMATS, help="file format (default: from the file name)")
    evaluate.add_argument("--data-dir", metavar="DIR", help="folder of a named dataset's files")
    evaluate.add_argument("--limit", type=_positive_int, metavar="N", help="evaluate on N examples")
    evaluate.add_argument("--batch-size", type=_positive_int, default=32, metavar="N")
    evaluate.set_defaults(run=command_evaluate)

    predict = commands.add_parser(
        "predict", parents=[common], help="predictions of a saved model for a file or stdin, as JSON Lines",
        description="Predict with a saved or exported model. Input: a .txt file or stdin (one text per line), a "
                    "CSV/JSONL file (--text-column), or a CoNLL file for token classification. Output: one JSON "
                    "object per input, on stdout or in --output.",
        epilog="output records: classification {text, label, probabilities}; multilabel {text, labels, "
               "probabilities}; regression {text, value}; token classification {words, tags}.")
    predict.add_argument("model", help="folder of a saved model, or of an exported one (tunekit export, or a "
                                       "TFLite artifact of tunekit.deploy.export_tflite)")
    predict.add_argument("input", nargs="?", default="-", help="input file (default: - for stdin)")
    predict.add_argument("--output", "-o", metavar="FILE",
                         help="write the JSON Lines here (atomically) instead of stdout")
    predict.add_argument("--format", choices=FILE_FORMATS,
                         help="input format (default: from the file name; stdin: text)")
    predict.add_argument("--text-column", default="text", metavar="NAME",
                         help="column (CSV) or field (JSONL) of the texts")
    predict.add_argument("--text-pair-column", metavar="NAME",
                         help="column of the second texts, for models on text pairs")
    predict.add_argument("--batch-size", type=_positive_int, default=32, metavar="N")
    predict.set_defaults(run=command_predict)

    export = commands.add_parser(
        "export", parents=[common], help="write a serving SavedModel (raw strings in) from a saved model",
        description="Export a saved model as a self-contained SavedModel whose serving_default takes raw strings.")
    export.add_argument("model", help="folder of a saved model")
    export.add_argument("output", help="folder to write the SavedModel (or the LiteRT model) to")
    export.add_argument("--tflite", choices=("int8", "float16", "float32"), metavar="{int8,float16,float32}",
                        help="write a LiteRT model with the tokenizer inside instead, with int8 (3.5-6x faster on "
                             "CPU, 14%% of the size), float16 or float32 weights; see docs/deployment.md")
    export.add_argument("--validation", metavar="DATA",
                        help="with --tflite: labelled data (a file or DATASET[:SPLIT]) on which the manifest "
                             "records the accuracy of the model and of the LiteRT model")
    export.add_argument("--label-column", metavar="NAME", help="label column of --validation (default: label)")
    export.add_argument("--data-dir", metavar="DIR", help="folder of a named dataset's files")
    _add_text_columns(export)
    export.set_defaults(run=command_export)

    backbones = commands.add_parser(
        "list-backbones", parents=[common], help="print the registered backbone short names",
        description="Print the short names that --backbone and load_backbone accept.")
    backbones.add_argument("--verbose", "-v", action="store_true", help="also print where each one comes from")
    backbones.set_defaults(run=command_list_backbones)

    from tunekit.serving import cli as serving_cli  # imports no server dependency

    serve = commands.add_parser(
        "serve", parents=[common], help='serve exported models over HTTP (needs pip install "tunekit[serve]")',
        description="Serve exported models over HTTP (TF Serving REST and KServe v2 routes); see docs/serving.md.")
    serving_cli.add_arguments(serve)
    serve.set_defaults(run=serving_cli.main)
    return parser


def main(argv=None):
    """Runs the `tunekit` command with `argv` (default: `sys.argv[1:]`); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except UsageError as error:
        print(f"{PROG} {args.command}: error: {error}", file=sys.stderr)
        if args.traceback:
            traceback.print_exc()
        return 2
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - the command's failure, reported without a traceback by default
        if args.traceback:
            traceback.print_exc()
        print(f"{PROG} {args.command}: error: {type(error).__name__}: {error}", file=sys.stderr)
        if not args.traceback:
            print(f"{PROG}: run again with --traceback to see where it failed", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
