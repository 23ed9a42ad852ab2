"""The settings `tunekit train` accepts: one row per keyword argument of `tunekit.load_backbone` (config section
`backbone:`), `tunekit.attach_head` (`head:`) and `tunekit.Trainer` (`trainer:`) that takes a plain value.

The table is explicit rather than read from the functions' signatures: it gives each key its accepted value types
(checked before any work), its default as `--help` shows it, its help text, and its flag where it has one. A test
keeps it in step with the signatures (tests/cli/test_cli_settings.py), so a new keyword argument fails the suite
until it has a row here.

Example:

>>> SETTINGS["trainer"]["epochs"].default
3
>>> check_settings("trainer", {"learning_rate": "5e-5", "epochs": 2})  # PyYAML reads 5e-5 as a string
{'learning_rate': 5e-05, 'epochs': 2}
>>> check_settings("trainer", {"epochs": "two"})
Traceback (most recent call last):
...
tunekit.cli.errors.UsageError: trainer.epochs must be an integer, got 'two'.
"""

import argparse
import math
import re
import textwrap
from dataclasses import dataclass

from tunekit.cli.errors import UsageError
from tunekit.cli.tasks import TASK_NAMES

REQUIRED = object()  # the default of a setting without one
# PyYAML reads `5e-5` (no dot) as a string; such values are numbers.
SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string", list: "a list",
              dict: "a mapping", type(None): "null"}


def positive_int(text):
    """argparse type of counts: `--epochs 2`.

    >>> positive_int("2")
    2
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def finite_float(text):
    """argparse type of rates: `--learning-rate 5e-5`.

    >>> finite_float("5e-5")
    5e-05
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


@dataclass(frozen=True)
class Setting:
    """One config key: the value types it accepts, its default (`REQUIRED` for none), its help, its flag."""

    types: tuple
    default: object
    help: str
    shown_default: str = None  # for --help, where the default is not a plain value (it depends on the data, ...)
    flag: str = None
    metavar: str = None
    flag_type: object = None
    choices: tuple = None

    def accepts(self, value):
        """Whether `value` (read from YAML/JSON) has one of the types (a bool is no number, an int is a float)."""
        if isinstance(value, bool):
            return bool in self.types
        if isinstance(value, int) and float in self.types:
            return True
        return isinstance(value, self.types)

    def default_phrase(self):
        """How `--help` states the default: `default: 3e-05`, `default: true`, `required`."""
        if self.default is REQUIRED and self.shown_default is None:
            return "required"
        return f"default: {self.default_text()}"

    def default_text(self):
        """The default as `--help` shows it: `3e-05`, `linear`, `true`, `none`."""
        if self.shown_default is not None:
            return self.shown_default
        if isinstance(self.default, bool):
            return str(self.default).lower()
        return "none" if self.default is None else str(self.default)


S, N = str, type(None)
SETTINGS = {
    "backbone": {
        "handle": Setting((S,), REQUIRED, "short name (tunekit list-backbones), TF Hub URL, or local folder",
                          flag="--backbone", metavar="HANDLE"),
        "seq_length": Setting((int,), 128, "tokens per text after packing, special tokens included: 3..512",
                              flag="--seq-length", metavar="N", flag_type=positive_int),
        "truncation": Setting((S,), "head_tail", 'long texts: "head_tail" keeps the start and the end, "head" the '
                                                 "start"),
        "long_texts": Setting((S,), "truncate", 'at prediction: "truncate" texts as `truncation` cuts them, or '
                                                '"windows": read all of a long text in windows and average'),
        "trainable": Setting((bool,), True, "fine-tune the encoder too; false trains the head only"),
        "preprocessor": Setting((S, N), None, "preprocessor handle for a backbone that needs one",
                                shown_default="the backbone's own", flag="--preprocessor", metavar="HANDLE"),
        "dtype": Setting((S, N), None, 'what a native encoder computes in: "float32", "mixed_bfloat16", '
                                       '"mixed_float16", or "auto" (bfloat16 on AMX / AVX512_BF16 CPUs and GPUs of '
                                       'compute capability 8+, else float32)',
                         shown_default="$TUNEKIT_DTYPE if set, else float32"),
        "native": Setting((bool, N), None, "TF Hub encoders: true converts to tunekit's native encoder, false keeps "
                                           "the SavedModel", shown_default="convert where possible"),
    },
    "head": {
        "task": Setting((S,), REQUIRED, f"the task: {', '.join(TASK_NAMES)}", choices=TASK_NAMES, flag="--task",
                        shown_default="token_classification for CoNLL data, regression for float labels, "
                                      "classification otherwise"),
        "num_classes": Setting((int, N), None, "classification: the number of classes",
                               shown_default="from the labels or the data"),
        "labels": Setting((list, S, N), None, "label names in output order: a list, or comma-separated",
                          shown_default="from the data", flag="--labels", metavar="A,B,..."),
        "num_outputs": Setting((int,), 1, "regression: values per text"),
        "threshold": Setting((float, list), 0.5, "multilabel: decision threshold, one for all labels or one per "
                                                 "label"),
        "pooling": Setting((S, N), None, 'the sentence vector: "pooled", "mean" or "cls"',
                           shown_default="the backbone's"),
        "dropout": Setting((float,), 0.1, "dropout rate before the output layer"),
        "text_pairs": Setting((bool,), False, "the task is on pairs of texts",
                              shown_default="true when the data has a pair column", flag="--text-pairs"),
        "seed": Setting((int, N), None, "seeds the head's initial weights and dropout", shown_default="random"),
    },
    "trainer": {
        "learning_rate": Setting((float, N), None, "peak learning rate, reached after warmup",
                                 shown_default="by the backbone's width: 3e-05 for BERT-base and wider (hidden "
                                               "size >= 768), 1e-4 for smaller ones such as MiniLM",
                                 flag="--learning-rate", metavar="LR", flag_type=finite_float),
        "epochs": Setting((int,), 3, "passes over the training data", flag="--epochs", metavar="N",
                          flag_type=positive_int),
        "batch_size": Setting((int,), 32, "texts per training step", flag="--batch-size", metavar="N",
                              flag_type=positive_int),
        "weight_decay": Setting((float,), 0.01, "AdamW weight decay, not on biases and LayerNorm"),
        "warmup_ratio": Setting((float,), 0.1, "fraction of the steps with linear warmup"),
        "schedule": Setting((S,), "linear", 'learning rate after warmup: "linear" (to 0), "cosine" or "constant"'),
        "clipnorm": Setting((float, N), 1.0, "global gradient-norm clip; null: none"),
        "early_stopping_patience": Setting((int, N), None, "with validation data: stop after this many epochs "
                                                           "without a lower validation loss", shown_default="off"),
        "checkpoint_dir": Setting((S, N), None, "save the weights after every epoch into this folder"),
        "seed": Setting((int, N), None, "makes the run repeatable", shown_default="random", flag="--seed",
                        metavar="N", flag_type=int),
        "group_by_length": Setting((bool,), True, "batch texts of similar length together: less padding; false "
                                                     "where length tracks the label"),
        "jit_compile": Setting((bool,), False, "compile the training step with XLA"),
        "verbose": Setting((S, int), "auto", "Keras progress output: auto, 0, 1 or 2",
                           shown_default="1 on a terminal, 2 (a line per epoch) otherwise, 0 with -q"),
        "backup_dir": Setting((S, N), None, "keep crash-safe backups of the run here; running the same command "
                                            "again after a crash resumes from the last one",
                              flag="--backup-dir", metavar="DIR"),
        "backup_every": Setting((int,), 100, "optimizer steps between backups"),
        "log_dir": Setting((S, N), None, 'write TensorBoard events and epochs.csv / steps.csv here; needs pip '
                                         'install "tunekit[logs]"'),
        "log_every": Setting((int,), 10, "optimizer steps between rows of steps.csv"),
        "class_weight": Setting((S, dict, N), None, '"balanced", or a mapping from label name to weight'),
        "gradient_accumulation_steps": Setting((int,), 1, "average the gradients of this many batches per "
                                                          "optimizer step"),
        "layer_decay": Setting((float, N), None, "layer-wise learning-rate decay, in (0, 1]", shown_default="off"),
    },
}
# Keyword arguments that take Python objects, which a config file cannot hold.
PYTHON_ONLY = {"trainer": {"callbacks": "Keras callbacks", "augment": "tunekit.augment augmentations or functions"}}
# Where each section's keys go (the config file's comments and the messages name them).
TARGETS = {"backbone": "tunekit.load_backbone", "head": "tunekit.attach_head", "trainer": "tunekit.Trainer"}


def check_settings(section, values):
    """`values` of a config section, checked against its table: unknown keys and wrong types raise `UsageError`
    naming the valid ones; numbers PyYAML left as strings (`5e-5`) become floats. Returns `values`."""
    table = SETTINGS[section]
    python_only = sorted(set(values) & set(PYTHON_ONLY.get(section, ())))
    if python_only:
        key = python_only[0]
        raise UsageError(f"{section}.{key} takes {PYTHON_ONLY[section][key]}, which a config cannot hold: use the "
                         f"Python API ({TARGETS[section]}(..., {key}=...)).")
    unknown = sorted(set(values) - set(table))
    if unknown:
        raise UsageError(
            f"unknown key(s) {', '.join(unknown)} in config section {section!r}; it takes: {', '.join(table)}."
        )
    for key, value in values.items():
        setting = table[key]
        if isinstance(value, str) and float in setting.types and SCIENTIFIC.fullmatch(value):
            values[key] = value = float(value)
        if not setting.accepts(value):
            kinds = " or ".join(TYPE_WORDS[kind] for kind in setting.types)
            raise UsageError(f"{section}.{key} must be {kinds}, got {value!r}.")
        if setting.choices and value not in setting.choices:
            raise UsageError(f"{section}.{key} must be one of {', '.join(setting.choices)}, got {value!r}.")
    return values


def flagged():
    """`(section, key, setting)` of the settings that have a `tunekit train` flag, in table order."""
    return [(section, key, setting) for section, table in SETTINGS.items() for key, setting in table.items()
            if setting.flag]


def describe_settings(width=110):
    """The `settings:` block of `tunekit train --help`: every key of every section with its default and help.

    >>> print(describe_settings())                                          # doctest: +ELLIPSIS
    settings (config file sections, or --set SECTION.KEY=VALUE):
      backbone: (tunekit.load_backbone)
        handle                       short name (tunekit list-backbones), TF Hub URL, or local folder (required)
    ...
        epochs                       passes over the training data (default: 3)
    ...
    """
    lines = ["settings (config file sections, or --set SECTION.KEY=VALUE):"]
    indent = " " * 33
    for section, table in SETTINGS.items():
        lines.append(f"  {section}: ({TARGETS[section]})")
        for key, setting in table.items():
            text = f"    {key:<28} {setting.help} ({setting.default_phrase()})"
            lines += textwrap.wrap(text, width, subsequent_indent=indent, break_on_hyphens=False)
    return "\n".join(lines)
