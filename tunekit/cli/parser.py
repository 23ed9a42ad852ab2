"""The `tunekit` command line: subcommands, flags and help texts (`tunekit --help`, `tunekit train --help`).

`train`'s setting flags and the settings list of its help come from `tunekit.cli.settings`, so the help shows
every setting with its default.

Example:

>>> args = build_parser().parse_args(["train", "--backbone", "minilm-l6", "--epochs", "2"])
>>> args.backbone_handle, args.trainer_epochs, args.trainer_learning_rate
('minilm-l6', 2, None)
"""

import argparse

from tunekit.cli import commands
from tunekit.cli.config import CONFIG_SECTIONS, flag_dest
from tunekit.cli.data_sources import FILE_FORMATS, NAMED_DATASETS
from tunekit.cli.errors import PROG
from tunekit.cli.settings import describe_settings, flagged, positive_int

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


def _add_text_columns(parser):
    parser.add_argument("--text-column", metavar="NAME",
                        help="column (CSV) or field (JSONL) of the texts (default: text)")
    parser.add_argument("--text-pair-column", metavar="NAME",
                        help="column of the second texts, for models on text pairs")


def _add_common_options(parser, default):
    parser.add_argument("--traceback", action="store_true", default=default,
                        help="show the full traceback of a failure, and TensorFlow's own log")
    parser.add_argument("-q", "--quiet", action="store_true", default=default, help="no progress messages on stderr")


def _add_setting_flags(parser):
    """`--backbone`, `--epochs`, ...: one flag per setting that has one, its help ending with the default.

    A flag left out is None, so the config file's value (or the API's default) stands.
    """
    for section, key, setting in flagged():
        options = {"dest": flag_dest(section, key), "default": None,
                   "help": f"{setting.help} ({setting.default_phrase()}; config: {section}.{key})"}
        if setting.types == (bool,):
            parser.add_argument(setting.flag, action="store_true", **options)
        else:
            parser.add_argument(setting.flag, type=setting.flag_type, metavar=setting.metavar,
                                choices=setting.choices, **options)


def _add_train(commands_, common):
    train = commands_.add_parser(
        "train", parents=[common], epilog=f"{describe_settings()}\n\n{EXAMPLES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="fine-tune a backbone on a CSV/JSONL/CoNLL file or a named dataset; save (and export) it",
        description="Fine-tune a backbone and save the model. Settings come from --config (YAML or JSON with the "
                    f"sections {', '.join(CONFIG_SECTIONS)}), then the flags, then --set; the list below gives "
                    "every setting and its default.")
    train.add_argument("--config", metavar="FILE", help="YAML (.yaml/.yml) or JSON config file")
    _add_setting_flags(train)
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
    train.set_defaults(run=commands.command_train)


def _add_evaluate(commands_, common):
    evaluate = commands_.add_parser(
        "evaluate", parents=[common], help="metrics of a saved model on labelled data, printed as JSON",
        description="Evaluate a saved model (tunekit train / tunekit.save_model) on labelled data.")
    evaluate.add_argument("model", help="folder of a saved model")
    evaluate.add_argument("data", help="a .csv, .jsonl or CoNLL file, or DATASET[:SPLIT]")
    _add_text_columns(evaluate)
    evaluate.add_argument("--label-column", metavar="NAME",
                          help="column (CSV) or field (JSONL) of the labels (default: label)")
    evaluate.add_argument("--format", choices=FILE_FORMATS, help="file format (default: from the file name)")
    evaluate.add_argument("--data-dir", metavar="DIR", help="folder of a named dataset's files")
    evaluate.add_argument("--limit", type=positive_int, metavar="N", help="evaluate on N examples")
    evaluate.add_argument("--batch-size", type=positive_int, default=32, metavar="N",
                         help="texts per step (default: 32)")
    evaluate.set_defaults(run=commands.command_evaluate)


def _add_predict(commands_, common):
    predict = commands_.add_parser(
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
                         help="column (CSV) or field (JSONL) of the texts (default: text)")
    predict.add_argument("--text-pair-column", metavar="NAME",
                         help="column of the second texts, for models on text pairs")
    predict.add_argument("--batch-size", type=positive_int, default=32, metavar="N",
                         help="texts per step (default: 32)")
    predict.set_defaults(run=commands.command_predict)


def _add_export(commands_, common):
    export = commands_.add_parser(
        "export", parents=[common],
        help="write a serving SavedModel (raw strings in) from a saved model, or with --tflite a LiteRT model "
             "(int8, float16 or float32 weights)",
        description="Export a saved model as a self-contained SavedModel whose serving_default takes raw strings, "
                    "or with --tflite as a LiteRT model with the tokenizer inside.")
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
    export.set_defaults(run=commands.command_export)


def build_parser():
    """The `tunekit` argument parser, with every subcommand."""
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
    commands_ = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_train(commands_, common)
    _add_evaluate(commands_, common)
    _add_predict(commands_, common)
    _add_export(commands_, common)

    backbones = commands_.add_parser(
        "list-backbones", parents=[common], help="print the registered backbone short names",
        description="Print the short names that --backbone and load_backbone accept.")
    backbones.add_argument("--verbose", "-v", action="store_true", help="also print where each one comes from")
    backbones.set_defaults(run=commands.command_list_backbones)

    from tunekit.serving import cli as serving_cli  # imports no server dependency

    serve = commands_.add_parser(
        "serve", parents=[common], help='serve exported models over HTTP (needs pip install "tunekit[serve]")',
        description="Serve exported models over HTTP (TF Serving REST and KServe v2 routes); see docs/serving.md.")
    serving_cli.add_arguments(serve)
    serve.set_defaults(run=serving_cli.main)
    return parser
