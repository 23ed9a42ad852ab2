"""The `tunekit` subcommands: `train`, `evaluate`, `predict`, `export` and `list-backbones` (`serve` is
`tunekit.serving.cli`). Each takes the parsed `argparse` namespace and returns the exit code; usage errors raise
`UsageError` before any work. Results (JSON) go to stdout, progress to stderr.

Example:

>>> import argparse
>>> command_list_backbones(argparse.Namespace(verbose=False))                 # doctest: +ELLIPSIS
albert_en_base
...
0
"""

import contextlib
import json
import os
import sys
import tempfile

from tunekit.cli import tasks
from tunekit.cli.config import build_train_config
from tunekit.cli.data_sources import (
    SPLITS,
    data_spec,
    labelled_format,
    option_defaults,
    read_labelled,
    read_unlabelled,
)
from tunekit.cli.errors import EXIT_OK, PROG, UsageError, user_errors

PREDICT_CHUNK = 512


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
    """`json.dumps` default for numpy scalars and arrays in metrics.

    >>> import numpy as np
    >>> json.dumps({"accuracy": np.float32(0.5)}, default=to_json)
    '{"accuracy": 0.5}'
    """
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def status(args, message):
    """A progress line on stderr (silenced by --quiet)."""
    if not getattr(args, "quiet", False):
        print(f"{PROG}: {message}", file=sys.stderr, flush=True)


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
    specs = {split: data_spec(data[split], data) for split in SPLITS if split in data}

    status(args, "loading TensorFlow")
    import_tensorflow(args)
    import tunekit as tk

    head_args = dict(config["head"])
    trainer_args = dict(config["trainer"])
    # Keras' progress bar; one line per epoch where stderr is a log file rather than a terminal.
    trainer_args.setdefault("verbose", 0 if args.quiet else 1 if sys.stderr.isatty() else 2)

    splits = {}
    for split, spec in specs.items():
        x, y, names = read_labelled(spec, task=head_args.get("task"))
        splits[split] = (x, y)
        if split == "train":
            is_conll = "path" in spec and labelled_format(spec["path"], spec.get("format")) == "conll"
            head_args = tasks.infer_head(head_args, is_conll, y, names)
            if isinstance(x, tuple) and "text_pairs" not in head_args:
                head_args["text_pairs"] = True
        status(args, f"{split}: {len(y)} examples from {spec.get('path') or spec.get('dataset')}")

    with user_errors():
        status(args, f"loading backbone {config['backbone']['handle']}")
        backbone = tk.load_backbone(**config["backbone"])
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
    return EXIT_OK


def load_saved_model(path, args):
    """The saved model at `path` (`tunekit.load_model`), with TensorFlow imported quietly."""
    path = os.path.expanduser(path)
    if not os.path.exists(path):
        raise UsageError(f"model {path!r} does not exist.")
    status(args, f"loading {path}")
    import_tensorflow(args)
    import tunekit as tk

    with user_errors():
        return tk.load_model(path)


def command_evaluate(args):
    spec = data_spec(args.data, option_defaults(args))
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
    return EXIT_OK


def open_predictor(path, args):
    """`(task, num_segments, predict)` for a saved model folder or an exported artifact folder (SavedModel
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
        return model.task, model.num_segments, lambda x: model.task.records(trainer.predict(x))
    status(args, f"loading the exported model {path}")
    from tunekit.deploy import load_artifact

    with user_errors():
        artifact = load_artifact(path)
    from tunekit.inputs import input_kind

    joined = input_kind(artifact.head).joined_texts

    def predict(x):
        texts, pairs = x if isinstance(x, tuple) else (joined(x), None)
        return artifact.records(artifact.predict(texts, pairs, batch_size=args.batch_size))

    return artifact.head, artifact.num_segments, predict


def check_predictions_file(path):
    """Raises `UsageError` unless `path` is a new file in an existing folder (`predict --output`)."""
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageError(f"--output {path!r} is a folder; give a file name, e.g. predictions.jsonl.")
    if os.path.lexists(path):
        raise UsageError(f"--output {path!r} already exists, and tunekit never replaces a file it may not "
                         "have written: give a new file name, or delete that file first.")
    if not os.path.isdir(parent):
        raise UsageError(f"--output: the folder {parent!r} does not exist.")


def command_predict(args):
    if args.output:
        check_predictions_file(args.output)
    task, num_segments, predict = open_predictor(args.model, args)
    records, x = read_unlabelled(args.input, args, task)
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
    return EXIT_OK


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
        return EXIT_OK
    from tunekit.deploy import export_tflite

    validation = None
    if args.validation is not None:
        x, y, _ = read_labelled(data_spec(args.validation, option_defaults(args)), task=model.task.name)
        validation = (x, y)
    status(args, f"converting to a {args.tflite} LiteRT model in {args.output}")
    with user_errors():  # a model whose ops cannot convert, labels that do not fit the model
        path = export_tflite(model, args.output, compression=args.tflite, validation_data=validation,
                             base=os.path.basename(os.path.normpath(args.model)))
    from tunekit.files import FORMAT_VERSIONS, read_manifest

    manifest = read_manifest(path, what="TFLite artifact", format_version={"tflite": FORMAT_VERSIONS["tflite"]})
    print(json.dumps({"export": path, "compression": args.tflite, "size_bytes": manifest.get("size_bytes"),
                      "accuracy": manifest.get("accuracy")}, default=to_json))
    return EXIT_OK


def command_list_backbones(args):
    from tunekit.backbones.registry import REGISTRY

    for name in sorted(REGISTRY):
        print(f"{name}\t{REGISTRY[name].encoder}" if args.verbose else name)
    return EXIT_OK
