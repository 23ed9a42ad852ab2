"""`tunekit train`'s settings: the explicit table matches the API it configures, and config values are checked
(keys, types) and merged (file, then flags, then --set) before any work."""

import inspect

import pytest

import tunekit as tk
from tunekit.cli import main
from tunekit.cli.config import build_train_config
from tunekit.cli.errors import UsageError
from tunekit.cli.parser import build_parser
from tunekit.cli.settings import PYTHON_ONLY, REQUIRED, SETTINGS, check_settings
from tunekit.cli.tasks import TASK_NAMES

CONFIGURED = {"backbone": (tk.load_backbone, 0), "head": (tk.attach_head, 1), "trainer": (tk.Trainer, 1)}


@pytest.mark.parametrize("section", sorted(CONFIGURED))
def test_the_table_has_every_keyword_argument_with_its_default(section):
    """A keyword argument added to load_backbone, attach_head or Trainer fails here until the table has its row."""
    function, positional = CONFIGURED[section]
    parameters = list(inspect.signature(function).parameters.values())[positional:]
    documented = {*SETTINGS[section], *PYTHON_ONLY.get(section, {})}
    assert {p.name for p in parameters} == documented
    for parameter in parameters:
        if parameter.name in SETTINGS[section]:
            default = SETTINGS[section][parameter.name].default
            expected = REQUIRED if parameter.default is inspect.Parameter.empty else parameter.default
            assert default == expected or default is expected, f"{section}.{parameter.name}"


def test_task_names_are_the_heads_tasks():
    assert set(TASK_NAMES) == set(tk.heads.TASKS)


@pytest.mark.parametrize(
    "section, values, message",
    [
        ("trainer", {"epoch": 2}, "unknown key(s) epoch in config section 'trainer'; it takes: learning_rate, epochs"),
        ("trainer", {"epochs": "two"}, "trainer.epochs must be an integer, got 'two'."),
        ("trainer", {"epochs": 2.0}, "trainer.epochs must be an integer, got 2.0."),
        ("trainer", {"learning_rate": True}, "trainer.learning_rate must be a number or null, got True."),
        ("trainer", {"clipnorm": "none"}, "trainer.clipnorm must be a number or null, got 'none'."),
        ("backbone", {"trainable": "yes"}, "backbone.trainable must be true or false, got 'yes'."),
        ("head", {"task": "tagging"},
         "head.task must be one of classification, multilabel, regression, token_classification, got 'tagging'."),
        ("trainer", {"callbacks": ["EarlyStopping"]},
         ("trainer.callbacks takes Keras callbacks, which a config cannot hold: use the Python API "
          "(tunekit.Trainer(..., callbacks=...)).")),
        ("trainer", {"augment": "synonyms"}, "trainer.augment takes tunekit.augment augmentations or functions"),
    ],
)
def test_bad_settings_are_refused_naming_the_fix(section, values, message):
    with pytest.raises(UsageError) as error:
        check_settings(section, values)
    assert message in str(error.value)


def test_settings_accept_what_the_api_accepts():
    values = {"learning_rate": "1e-3", "epochs": 2, "clipnorm": None, "class_weight": {"neg": 2.0},
              "verbose": 0, "layer_decay": 1}
    assert check_settings("trainer", values) == {"learning_rate": 0.001, "epochs": 2, "clipnorm": None,
                                                 "class_weight": {"neg": 2.0}, "verbose": 0, "layer_decay": 1}
    # Only number settings read scientific notation as a number: a handle stays the string it is.
    assert check_settings("backbone", {"handle": "1e5"}) == {"handle": "1e5"}
    assert check_settings("head", {"labels": "neg,pos", "threshold": [0.3, 0.7]})["labels"] == "neg,pos"


def test_file_then_flags_then_set(tmp_path):
    (tmp_path / "train.yaml").write_text(
        "backbone: minilm-l6\ntrainer: {epochs: 5, batch_size: 8, learning_rate: 1e-4}\n"
        "data: {train: train.csv, label_column: sentiment}\noutput: model\n", encoding="utf-8")
    args = build_parser().parse_args(
        ["train", "--config", str(tmp_path / "train.yaml"), "--epochs", "2", "--seq-length", "64", "--text-pairs",
         "--set", "trainer.batch_size=4", "--set", "head.dropout=0.2"])
    config = build_train_config(args)
    assert config["backbone"] == {"handle": "minilm-l6", "seq_length": 64}
    assert config["trainer"] == {"epochs": 2, "batch_size": 4, "learning_rate": 1e-4}
    assert config["head"] == {"text_pairs": True, "dropout": 0.2}
    assert config["data"] == {"train": "train.csv", "label_column": "sentiment"} and config["output"] == "model"


def test_a_wrong_type_exits_2_before_loading_tensorflow(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["train", "--backbone", "minilm-l6", "--train", "missing.csv", "--output", "out",
                 "--set", "trainer.warmup_ratio=ten percent"])
    error = capsys.readouterr().err
    assert code == 2
    assert "tunekit train: error: trainer.warmup_ratio must be a number, got 'ten percent'." in error
    assert "loading TensorFlow" not in error and not (tmp_path / "out").exists()
