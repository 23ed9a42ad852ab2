"""`tunekit train`'s settings: the config file (YAML or JSON), then the flags, then `--set` overrides, checked
section by section against `tunekit.cli.settings` before any work.

Example:

>>> config = {"trainer": {"epochs": 1}}
>>> apply_override(config, "trainer.learning_rate=5e-5")
>>> apply_override(config, "backbone=minilm-l6")
>>> config
{'trainer': {'epochs': 1, 'learning_rate': 5e-05}, 'backbone': 'minilm-l6'}
>>> section(config, "backbone", shorthand="handle")
{'handle': 'minilm-l6'}
"""

import json
import os

from tunekit.cli.data_sources import SPLITS, source_mapping
from tunekit.cli.errors import UsageError
from tunekit.cli.settings import SCIENTIFIC, check_settings, flagged

CONFIG_SECTIONS = ("backbone", "head", "trainer", "data", "output", "export")
# A bare string stands for this key of its section: `backbone: minilm-l6`, `head: regression`.
SHORTHANDS = {"backbone": "handle", "head": "task"}
# Keys of the `data:` section besides the splits: defaults for every file source.
DATA_DEFAULTS = ("text_column", "label_column", "text_pair_column", "data_dir")


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
    """A `--set` value: YAML/JSON scalars and lists (`2`, `5e-5`, `[a, b]`, `null`), otherwise the string.

    >>> parse_value("5e-5"), parse_value("[a, b]"), parse_value("null"), parse_value("a: b: c")
    (5e-05, ['a', 'b'], None, 'a: b: c')
    """
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:  # e.g. "a: b: c": a plain string
        value = text
    if isinstance(value, str) and SCIENTIFIC.fullmatch(value):
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
        elif isinstance(target[part], str) and part in SHORTHANDS:
            target[part] = {SHORTHANDS[part]: target[part]}
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


def check_sections(config):
    """Raises `UsageError` naming the sections that `tunekit train` does not know."""
    unknown = sorted(set(config) - set(CONFIG_SECTIONS))
    if unknown:
        raise UsageError(f"unknown config section(s) {', '.join(unknown)}; sections are: {', '.join(CONFIG_SECTIONS)}.")


def flag_dest(section_name, key):
    """The `argparse` destination of the flag of a setting: `trainer_epochs` for `--epochs`."""
    return f"{section_name}_{key}"


def build_train_config(args):
    """The train config: the file (if any), then flags, then `--set` overrides; every key checked."""
    config = read_config(args.config) if args.config else {}
    check_sections(config)
    sections = {name: section(config, name, shorthand=SHORTHANDS.get(name))
                for name in ("backbone", "head", "trainer", "data")}
    for name, key, _ in flagged():
        value = getattr(args, flag_dest(name, key))
        if value is not None:
            sections[name][key] = value
    for split in SPLITS:
        if getattr(args, split) is not None:
            sections["data"][split] = getattr(args, split)
    for option in DATA_DEFAULTS:
        if getattr(args, option) is not None:
            sections["data"][option] = getattr(args, option)
    config = {**sections, "output": args.output or config.get("output"),
              "export": args.export or config.get("export")}
    for assignment in args.set or ():
        apply_override(config, assignment)
    check_sections(config)
    for name in ("backbone", "head", "trainer", "data"):
        config[name] = section(config, name, shorthand=SHORTHANDS.get(name))
    if "handle" not in config["backbone"]:
        raise UsageError("no backbone: pass --backbone NAME (see `tunekit list-backbones`) or backbone.handle in the "
                         "config.")
    if "train" not in config["data"]:
        raise UsageError("no training data: pass --train FILE (CSV, JSONL or CoNLL) or data.train in the config.")
    if not config["output"]:
        raise UsageError("no output folder: pass --output DIR (or output: in the config) to save the trained model.")
    for name in ("backbone", "head", "trainer"):
        check_settings(name, config[name])
    unknown = sorted(set(config["data"]) - set(SPLITS) - set(DATA_DEFAULTS))
    if unknown:
        raise UsageError(
            f"unknown key(s) {', '.join(unknown)} in config section 'data'; it takes: {', '.join(SPLITS)}, "
            f"{', '.join(DATA_DEFAULTS)}."
        )
    return config
