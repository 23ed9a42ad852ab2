"""The `tunekit` command, run in subprocesses as a user runs it: train a tiny model from a CSV, predict to JSON
Lines, evaluate, export, and the exit codes and messages of usage errors."""

import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from sample_texts import sentiment_texts

from tunekit.files import sha256_of_file

LABELS = ["neg", "pos"]


def run_tunekit(*args, cwd, stdin=None, console_script=False, env=None):
    """Runs the command and returns the CompletedProcess (text mode)."""
    command = ["tunekit"] if console_script else [sys.executable, "-m", "tunekit"]
    return subprocess.run([*command, *args], cwd=cwd, input=stdin, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TUNEKIT_OFFLINE": "1", **(env or {})})


def hashes(root):
    """{relative path: sha256} of every file under `root`, to prove a command changed nothing."""
    return {os.path.relpath(os.path.join(folder, name), root): sha256_of_file(os.path.join(folder, name))
            for folder, _, files in os.walk(root) for name in files}


def write_csv(path, texts, labels):
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["review", "sentiment"])
        writer.writerows(zip(texts, labels))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, model_garden):
    """A model trained by `tunekit train` from a YAML config plus flag overrides, on a TF Hub encoder in the
    published format: (folder, result, process)."""
    root = tmp_path_factory.mktemp("cli")
    texts, labels = sentiment_texts(48, seed=3)
    write_csv(root / "train.csv", texts, [LABELS[label] for label in labels])
    (root / "train.yaml").write_text(
        f"backbone: {{handle: {model_garden['encoder']}, preprocessor: {model_garden['preprocessor']}, seq_length: 16}}\n"
        "head: {task: classification, labels: [neg, pos], seed: 0}\n"
        "trainer: {learning_rate: 1e-3, epochs: 3, batch_size: 8, seed: 0}\n"  # 1e-3: PyYAML reads a string
        "data: {train: train.csv, test: train.csv, text_column: review, label_column: sentiment}\n"
        "output: model\n",
        encoding="utf-8",
    )
    process = run_tunekit("train", "--config", "train.yaml", "--set", "trainer.epochs=2", "--export", "serving",
                          cwd=root)
    assert process.returncode == 0, process.stderr
    return root, json.loads(process.stdout), process


def test_help_lists_the_subcommands(tmp_path):
    process = run_tunekit("--help", cwd=tmp_path)
    assert process.returncode == 0
    for command in ("train", "evaluate", "predict", "export", "list-backbones", "serve"):
        assert command in process.stdout
    assert "examples:" in process.stdout and "exit codes" in process.stdout
    summary = process.stdout[process.stdout.index("\n    export "):process.stdout.index("\n    list-backbones")]
    assert "--tflite" in summary and "LiteRT" in summary  # the export line names both kinds of export


def test_train_help_shows_every_default(tmp_path):
    process = run_tunekit("train", "--help", cwd=tmp_path, env={"COLUMNS": "300"})  # no wrapping inside "3e-05"
    assert process.returncode == 0, process.stderr
    help_text = " ".join(process.stdout.split())
    for expected in (
        "(default: by the backbone's width: 3e-05 for BERT-base and wider (hidden size >= 768), 1e-4 for smaller "
        "ones such as MiniLM; config: trainer.learning_rate)",
        "(default: 3; config: trainer.epochs)",
        "(default: 32; config: trainer.batch_size)",
        "(default: 128; config: backbone.seq_length)",
        "warmup_ratio fraction of the steps with linear warmup (default: 0.1)",
        "weight_decay AdamW weight decay, not on biases and LayerNorm (default: 0.01)",
        'pooling the sentence vector: "pooled", "mean" or "cls" (default: the backbone\'s)',
        "(default: token_classification for CoNLL data",
    ):
        assert expected in help_text, expected


def test_list_backbones_prints_the_short_names(tmp_path):
    from tunekit.backbones import list_backbones

    script = shutil.which("tunekit")
    process = run_tunekit("list-backbones", cwd=tmp_path, console_script=script is not None)
    assert process.returncode == 0, process.stderr
    assert process.stdout.split() == list_backbones()
    assert "minilm-l6" in process.stdout.split()


def test_train_saves_exports_and_reports_json(trained):
    root, result, process = trained
    assert result["model"] == str(root / "model") and result["export"] == str(root / "serving")
    assert set(result["test"]) >= {"loss", "accuracy", "f1"}
    assert (root / "model" / "tunekit.json").is_file() and (root / "serving" / "saved_model.pb").is_file()
    # Progress on stderr; the --set override won over the config file.
    assert "tunekit: training (classification, 2 epoch(s)" in process.stderr
    assert "tunekit: saved the model to" in process.stderr


@pytest.fixture(scope="module")
def serve(trained):
    """The `serving_default` of the SavedModel that `tunekit train --export` wrote."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401 - registers the published preprocessor's ops, as for any TF Hub BERT export

    root, _, _ = trained
    return tf.saved_model.load(str(root / "serving")).signatures["serving_default"]


def test_predict_reads_stdin_and_writes_jsonl(trained, serve):
    import tensorflow as tf

    root, _, _ = trained
    texts = ["The film was great and superb.", "The plot was awful, boring.", "It is quite fine"]
    process = run_tunekit("predict", "model", "--output", "predictions.jsonl", "--batch-size", "2", cwd=root,
                          stdin="\n".join(texts) + "\n\n")
    assert process.returncode == 0, process.stderr
    assert process.stdout == "" and "wrote 3 predictions to predictions.jsonl" in process.stderr
    records = [json.loads(line) for line in (root / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [record["text"] for record in records] == texts
    expected = serve(text=tf.constant(texts))
    got = np.array([[record["probabilities"][name] for name in LABELS] for record in records])
    np.testing.assert_allclose(got, expected["probabilities"].numpy(), atol=1e-5)
    assert [record["label"] for record in records] == [label.decode() for label in expected["label"].numpy()]


def test_predict_refuses_stdin_that_is_not_utf8_naming_the_line(trained):
    root, _, _ = trained
    process = subprocess.run([sys.executable, "-m", "tunekit", "predict", "model"], cwd=root, capture_output=True,
                             input="A good film.\ncaf\xe9 au lait\n".encode("latin-1"), timeout=300,
                             env={**os.environ, "TUNEKIT_OFFLINE": "1"})
    assert process.returncode == 2 and process.stdout == b""
    assert b"stdin is not valid UTF-8: byte 0xe9 on line 2" in process.stderr and b"iconv" in process.stderr


def test_predict_never_replaces_an_existing_file(trained):
    root, _, _ = trained
    (root / "reviews.txt").write_text("my own reviews\n", encoding="utf-8")
    process = run_tunekit("predict", "model", "reviews.txt", "--output", "reviews.txt", cwd=root)
    assert process.returncode == 2 and "already exists" in process.stderr
    assert (root / "reviews.txt").read_text(encoding="utf-8") == "my own reviews\n"
    assert not [name for name in os.listdir(root) if name.startswith(".reviews.txt.partial-")]


def test_export_command_writes_the_same_serving_model(trained, serve):
    import tensorflow as tf

    root, _, _ = trained
    process = run_tunekit("export", "model", "exported", "-q", cwd=root)
    assert process.returncode == 0, process.stderr
    assert json.loads(process.stdout) == {"export": str(root / "exported")}
    exported = tf.saved_model.load(str(root / "exported")).signatures["serving_default"]
    texts = tf.constant(["The film was great and superb.", "The plot was awful, boring."])
    np.testing.assert_allclose(exported(text=texts)["probabilities"].numpy(),
                               serve(text=texts)["probabilities"].numpy(), atol=1e-6)


def test_export_tflite_int8_records_its_cost_and_predicts_like_the_model(trained):
    root, _, _ = trained
    process = run_tunekit("export", "model", "int8", "--tflite", "int8", "--validation", "train.csv",
                          "--text-column", "review", "--label-column", "sentiment", "-q", cwd=root)
    assert process.returncode == 0, process.stderr
    result = json.loads(process.stdout)
    assert result["export"] == str(root / "int8") and result["compression"] == "int8" and result["size_bytes"] > 0
    assert result["accuracy"]["examples"] == 48 and abs(result["accuracy"]["delta"]["accuracy"]) <= 2 / 48
    (root / "some.txt").write_text("The film was great and superb.\nThe plot was awful, boring.\n", encoding="utf-8")
    labels = {}
    for source in ("model", "int8"):
        predicted = run_tunekit("predict", source, "some.txt", "-q", cwd=root)
        assert predicted.returncode == 0, predicted.stderr
        labels[source] = [json.loads(line)["label"] for line in predicted.stdout.splitlines()]
    assert labels["int8"] == labels["model"] and len(labels["model"]) == 2
    refused = run_tunekit("export", "model", "other", "--validation", "train.csv", cwd=root)
    assert refused.returncode == 2 and "goes with --tflite" in refused.stderr and not (root / "other").exists()


def test_predict_with_an_exported_model_reads_csv(trained, serve, capsys):
    import tensorflow as tf

    from tunekit.cli import main

    root, _, _ = trained
    texts = ["The actor was good, very good.", "A dull, dull film"]
    write_csv(root / "new.csv", texts, ["?", "?"])
    code = main(["predict", str(root / "serving"), str(root / "new.csv"), "--text-column", "review", "-q"])
    assert code == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    expected = serve(text=tf.constant(texts))
    assert [record["text"] for record in records] == texts
    assert [record["label"] for record in records] == [label.decode() for label in expected["label"].numpy()]
    got = np.array([[record["probabilities"][name] for name in LABELS] for record in records])
    np.testing.assert_allclose(got, expected["probabilities"].numpy(), atol=1e-6)


def test_evaluate_command_prints_the_metrics(trained, capsys):
    from tunekit.cli import main

    root, result, _ = trained
    code = main(["evaluate", str(root / "model"), str(root / "train.csv"), "--text-column", "review",
                 "--label-column", "sentiment", "-q"])
    assert code == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["accuracy"] == pytest.approx(result["test"]["accuracy"])
    assert metrics["loss"] == pytest.approx(result["test"]["loss"], rel=1e-4)


@pytest.mark.parametrize(
    "config, args, message",
    [
        ("trainer: {epochs: 1}\nbogus: 1\n", [], "unknown config section(s) bogus"),
        ("data: {train: missing.csv}\noutput: out\n", ["--backbone", "minilm-l6"],
         "data file 'missing.csv' does not exist"),
        ("trainer: [1, 2\n", [], "is not valid YAML"),
        ("data: {train: train.csv}\n", ["--backbone", "minilm-l6"], "no output folder"),
        ("data: {train: train.csv}\n", ["--backbone", "minilm-l6", "--output", "m", "--export", "m"],
         "--output and --export are the same folder"),
        ("data: {train: train.csv}\n", ["--backbone", "minilm-l6", "--output", "m", "--export", "m/serving"],
         "or one lies inside the other"),
        ("data: {train: train.csv}\n", ["--backbone", "minilm-l6", "--output", "m", "--backup-dir", "m"],
         "--output and trainer.backup_dir are the same folder"),
        ("data: {train: sst2}\n", ["--backbone", "minilm-l6", "--output", "m"],
         "the dataset 'sst2' is read from its downloaded files: pass --data-dir DIR"),
    ],
)
def test_bad_config_exits_2_with_a_message(tmp_path, config, args, message):
    write_csv(tmp_path / "train.csv", ["a"], ["neg"])
    (tmp_path / "train.yaml").write_text(config, encoding="utf-8")
    process = run_tunekit("train", "--config", "train.yaml", *args, cwd=tmp_path)
    assert process.returncode == 2
    assert message in process.stderr
    assert "Traceback" not in process.stderr and process.stdout == ""


def test_unknown_trainer_key_and_bad_flag(tmp_path, hub_models, monkeypatch, capsys):
    from tunekit.cli import main

    monkeypatch.chdir(tmp_path)
    write_csv(tmp_path / "train.csv", ["a", "b"], ["neg", "pos"])
    code = main(["train", "--backbone", hub_models["encoder"], "--train", "train.csv", "--text-column", "review",
                 "--label-column", "sentiment", "--output", "out", "--set", "trainer.epoch=2"])
    error = capsys.readouterr().err
    assert code == 2
    assert "unknown key(s) epoch in config section 'trainer'" in error and "epochs" in error
    assert "Traceback" not in error and not (tmp_path / "out").exists()

    code = main(["evaluate", "no_such_model", "train.csv"])
    assert code == 2 and "model 'no_such_model' does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--epochs", "zero"])
    assert exit_info.value.code == 2 and "expected a positive integer" in capsys.readouterr().err


def test_export_onto_its_own_model_is_refused_and_changes_nothing(trained):
    root, _, _ = trained
    before = hashes(root / "model")
    for output in ("model", "./model/", str(root / "model"), "model/serving"):
        process = run_tunekit("export", "model", output, cwd=root)
        assert process.returncode == 2, process.stderr
        assert "the model and the export are the same folder" in process.stderr
    assert hashes(root / "model") == before


def test_a_read_only_output_folder_is_named_before_training(tmp_path):
    write_csv(tmp_path / "train.csv", ["a", "b"], ["neg", "pos"])
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() == 0:  # root writes into any folder with mode 555; an immutable folder is read-only to it
        if subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode:
            pytest.skip("chattr +i is not available to make a folder read-only for root")
    else:
        locked.chmod(0o555)
    try:
        process = run_tunekit("train", "--backbone", "minilm-l6", "--train", "train.csv", "--text-column", "review",
                              "--label-column", "sentiment", "--output", "locked/model", cwd=tmp_path)
    finally:
        subprocess.run(["chattr", "-i", str(locked)], capture_output=True)
        locked.chmod(0o755)
    assert process.returncode == 2, process.stderr
    assert f"Cannot write {str(locked / 'model')!r}: the folder {str(locked)!r} is read-only" in process.stderr
    assert "loading TensorFlow" not in process.stderr  # refused before any work
    assert os.listdir(locked) == []
