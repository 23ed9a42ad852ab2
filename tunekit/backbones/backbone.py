"""`load_backbone`: a pretrained encoder together with the preprocessing that matches it.

Example:

>>> import tunekit as tk
>>> backbone = tk.load_backbone("minilm-l6", seq_length=128)
>>> backbone.preprocessor.seq_length, backbone.pooling
(128, 'mean')
"""

import dataclasses
import importlib
import json
import os

import keras
import numpy as np

from tunekit.backbones.hub_encoder import HubEncoder, load_saved_model
from tunekit.backbones.model_garden import NotConvertible, convert_saved_model_encoder
from tunekit.backbones.precision import requested_dtype, resolve_dtype
from tunekit.backbones.registry import REGISTRY, get_spec
from tunekit.formats import BACKBONE_INFO_FILE, MARKER_FILE, read_manifest
from tunekit.hub_handles import is_saved_model_dir, is_url, resolve_handle
from tunekit.preprocessing.hub_preprocessor import HubPreprocessor
from tunekit.preprocessing.packing import validate_long_texts, validate_seq_length, validate_truncation
from tunekit.preprocessing.preprocessor import Preprocessor
from tunekit.preprocessing.wordpiece import WordPiecePreprocessor


@dataclasses.dataclass
class Backbone:
    """An encoder layer and its preprocessor layer, ready for `tunekit.attach_head`.

    Attributes:
        encoder: Keras layer, dict of int32 `[B, T]` inputs -> `pooled_output`, `sequence_output`, `encoder_outputs`.
        preprocessor: `tunekit.preprocessing.Preprocessor`, raw strings -> those inputs (padded to `seq_length`).
        name: the handle it was loaded from.
        pooling: the sentence vector heads use by default ("pooled", "mean" or "cls").
        loaded_as: how the encoder was loaded: a native `BertEncoder` (converted from a TF Hub SavedModel, or
            read from a Hugging Face checkpoint) or a `HubEncoder` over the SavedModel, and why.
    """

    encoder: keras.layers.Layer
    preprocessor: Preprocessor
    name: str
    pooling: str = "pooled"
    loaded_as: str = ""

    @property
    def seq_length(self):
        return self.preprocessor.seq_length

    def describe(self):
        """A few lines saying what this backbone is: encoder path and size, preprocessor, `seq_length`, pooling.

        >>> print(tk.load_backbone("minilm-l6").describe())
        minilm-l6: native BertEncoder read from the Hugging Face checkpoint ...
          encoder: BertEncoder, 6 layers, hidden 384, 22,713,216 weights, computes in ...
          preprocessor: WordPiecePreprocessor, seq_length 128, pooling 'mean'
        """
        encoder = self.encoder
        size = [f"{encoder.num_layers} layers"] if hasattr(encoder, "num_layers") else []
        size += [f"hidden {encoder.hidden_size}"] if hasattr(encoder, "hidden_size") else []
        size.append(f"{sum(int(np.prod(v.shape)) for v in encoder.weights):,} weights")
        size.append(f"computes in {keras.backend.standardize_dtype(encoder.compute_dtype)}")
        windows = ", long texts read in windows" if self.preprocessor.long_texts == "windows" else ""
        return (f"{self.name}: {self.loaded_as or type(encoder).__name__}\n"
                f"  encoder: {type(encoder).__name__}, {', '.join(size)}\n"
                f"  preprocessor: {type(self.preprocessor).__name__}, seq_length {self.seq_length}{windows}, "
                f"pooling {self.pooling!r}")


def load_backbone(handle, *, seq_length=128, truncation="head_tail", long_texts="truncate", trainable=True,
                  preprocessor=None, dtype=None, native=None):
    """Loads a BERT-family encoder and its matching preprocessor.

    Args:
        handle: one of
            - a registered short name (`tunekit.backbones.list_backbones()`), e.g.
              `"small_bert/bert_en_uncased_L-4_H-512_A-8"` or `"minilm-l6"`;
            - a tfhub.dev or Kaggle URL of a TF Hub encoder;
            - a local TF Hub-format encoder SavedModel directory, or a directory holding `encoder/` and
              `preprocessor/` SavedModels (what `tunekit.backbones.hub_format.save_backbone` writes);
            - a Hugging Face BERT checkpoint folder (`config.json`, `vocab.txt`, `model.safetensors`).
        seq_length: tokens per text after packing, special tokens included (3..512).
        truncation: for single texts longer than `seq_length`: `"head_tail"` (default) keeps the first quarter
            and the last three quarters of the budget, `"head"` keeps the start, as BERT's own preprocessing
            does. On IMDB at `seq_length=128`, head+tail gave 0.854 accuracy against 0.834 for head at the
            same speed (`benchmarks/speed_vs_peers.py`, docs/performance.md): long reviews often end with
            the verdict. Texts that fit are unaffected; pairs are always trimmed round-robin.
        long_texts: how the model reads single texts longer than `seq_length` at prediction (`predict`,
            `evaluate`, the export): `"truncate"` (default) as `truncation` cuts them, or `"windows"`: all of the
            text, in consecutive windows of `seq_length` tokens, the text's output the mean of its windows'. Training
            rows (and `fit`'s validation metrics) are truncated either way, so training costs the same. On IMDB at `seq_length=128` (3,000 training
            reviews, 2,000 test reviews), windows gave 0.900 accuracy against 0.869 for head+tail truncation, for
            2.5x the prediction time (`benchmarks/long_texts.py`, docs/performance.md). For classification,
            multilabel and regression of single texts; not for pairs; token classification reads long sentences
            whole already (in chunks). The LiteRT export refuses such a model (export a SavedModel).
        trainable: whether fine-tuning updates the encoder (False trains the head only).
        preprocessor: a preprocessor handle (URL or SavedModel directory) or `Preprocessor` layer that overrides
            the matching one, or supplies it where it cannot be found (an unregistered URL).
        dtype: what a native encoder (TF Hub BERT encoders, Hugging Face checkpoints, `minilm-l6`) computes in:
            `"float32"`; `"mixed_bfloat16"` or `"mixed_float16"` (16-bit activations and matrix products,
            float32 weights; heads always compute in float32); `"auto"`: `"mixed_bfloat16"` where the hardware
            has bfloat16 matrix units (AMX or AVX512_BF16 CPUs, GPUs of compute capability 8.0+), else
            float32. None (default): `$TUNEKIT_DTYPE` if set, else the global Keras policy (float32). bfloat16
            trains 1.37x faster per step on a CPU with such units, at IMDB's accuracy but 0.73 points lower on
            SST-2 over 3 seeds, hence not the default (docs/performance.md). An encoder left on the SavedModel
            path computes as it was saved (float32): a 16-bit `dtype` is an error for it, `"auto"` stays float32.
        native: for TF Hub SavedModel encoders: None (default) reads BERT encoders exported by TF Model Garden
            (the published TF Hub / Kaggle BERTs) into tunekit's native `BertEncoder`, checked against the
            SavedModel's own outputs, and keeps any other encoder on the SavedModel path (`HubEncoder`); True
            requires the conversion (ValueError saying why it is impossible); False keeps the SavedModel path.
            `backbone.loaded_as` / `backbone.describe()` say which path was taken. See docs/backbones.md for
            what each path supports.

    Returns:
        A `Backbone`.

    Example:

    A local TF Hub encoder folder and preprocessor folder (here TF Model Garden exports of a tiny test BERT; in
    general e.g. `load_backbone("/path/to/bert_encoder", preprocessor="/path/to/bert_preprocess")`):

    >>> backbone = load_backbone(encoder_dir, preprocessor=preprocessor_dir, seq_length=16)
    >>> print(backbone.describe())
    /...: native BertEncoder converted from the TF Hub SavedModel '...' (outputs within ... of the SavedModel's; ...)
      encoder: BertEncoder, 2 layers, hidden 32, 21,504 weights, computes in ...
      preprocessor: HubPreprocessor, seq_length 16, pooling 'pooled'
    """
    validate_seq_length(seq_length)
    validate_truncation(truncation)
    validate_long_texts(long_texts)
    options = {"seq_length": seq_length, "truncation": truncation, "long_texts": long_texts, "name": "preprocessor"}
    if not isinstance(handle, (str, os.PathLike)):
        raise TypeError(f"handle must be a string or path, got {type(handle).__name__}.")
    handle = os.fspath(handle)
    if not isinstance(trainable, bool):
        raise TypeError(f"trainable must be True or False, got {trainable!r}.")
    if native not in (None, True, False):
        raise TypeError(f"native must be None (convert when possible), True or False, got {native!r}.")
    dtype = requested_dtype(dtype)

    pooling = "pooled"
    if handle in REGISTRY:
        spec = get_spec(handle)
        pooling = spec.pooling
        if spec.source == "python-package":
            return _load_huggingface(_package_model_path(spec), handle, options, trainable, preprocessor, dtype,
                                         native)
        encoder_handle, default_preprocessor = spec.encoder, spec.preprocessor
    elif is_url(handle):
        encoder_handle = handle
        default_preprocessor = next(
            (spec.preprocessor for spec in REGISTRY.values() if spec.encoder.rstrip("/") == handle.rstrip("/")), None
        )
    elif os.path.isdir(os.path.expanduser(handle)):
        path = os.path.abspath(os.path.expanduser(handle))
        if os.path.isfile(os.path.join(path, "config.json")):
            return _load_huggingface(path, handle, options, trainable, preprocessor, dtype, native)
        if is_saved_model_dir(os.path.join(path, "encoder")):
            encoder_handle = os.path.join(path, "encoder")
            default_preprocessor = os.path.join(path, "preprocessor")
            pooling = _recorded_pooling(path) or pooling
        else:
            encoder_handle = resolve_handle(path, what="encoder")
            default_preprocessor = None
    else:
        if not handle.startswith(("/", ".", "~")):
            get_spec(handle)  # an unknown short name: raises, listing close names
        resolve_handle(handle, what="encoder")  # a missing directory: raises

    encoder, loaded_as, carried_vocabulary = _saved_model_encoder(encoder_handle, handle, trainable, dtype, native)
    return _checked(Backbone(
        encoder=encoder,
        preprocessor=_matching_preprocessor(preprocessor, default_preprocessor, carried_vocabulary, handle, options),
        name=handle,
        pooling=pooling,
        loaded_as=loaded_as,
    ))


def _recorded_pooling(path):
    """The default pooling that the backbone folder `path` records, checked through its `tunekit.json` (kind,
    format version, every file's sha256); None for `encoder/` and `preprocessor/` SavedModels put together by hand
    (neither tunekit.json nor backbone.json).

    Folders of tunekit 0.1.0 (a generic "artifact" manifest listing backbone.json) still load; a folder of a newer
    format is refused, naming the tunekit that reads it.
    """
    if not any(os.path.exists(os.path.join(path, name)) for name in (MARKER_FILE, BACKBONE_INFO_FILE)):
        return None
    read_manifest(path, ("backbone", "artifact"), what="backbone folder")
    info_file = os.path.join(path, BACKBONE_INFO_FILE)
    if not os.path.isfile(info_file):
        return None
    with open(info_file, encoding="utf-8") as file:
        return json.load(file).get("pooling")


def _saved_model_encoder(encoder_handle, handle, trainable, dtype, native):
    """(encoder, how it was loaded, (vocab_file, lower_case) the SavedModel carries or None) of a TF Hub encoder.

    Model Garden's BERT encoders become native `BertEncoder`s (checked against the SavedModel's own outputs);
    anything else, or `native=False`, stays a `HubEncoder` over the SavedModel."""
    path = resolve_handle(encoder_handle, what="encoder")
    module = load_saved_model(path)
    reason = "native=False"
    if native is not False:
        try:
            conversion = convert_saved_model_encoder(path, module=module, dtype=resolve_dtype(dtype))
        except NotConvertible as error:
            if native:
                raise ValueError(
                    f"{handle!r} cannot be read into tunekit's native encoder: {error}. Load it on the SavedModel "
                    "path with native=False (docs/backbones.md lists what that path supports)."
                ) from None
            reason = f"not converted: {error}"
        else:
            conversion.encoder.trainable = trainable
            carried = None if conversion.vocab_file is None else (conversion.vocab_file, conversion.lower_case)
            return conversion.encoder, (
                f"native BertEncoder converted from the TF Hub SavedModel {path!r} (outputs within "
                f"{conversion.max_difference:.1e} of the SavedModel's; dropout from {conversion.dropout_source})"
            ), carried
    if dtype not in (None, "float32", "auto"):
        raise ValueError(
            f"dtype={dtype!r} needs a native encoder: {handle!r} stays a TF Hub SavedModel ({reason}), whose graph "
            "computes in float32. Load a Model Garden BERT encoder or a Hugging Face checkpoint for mixed "
            "precision, or leave dtype unset."
        )
    encoder = HubEncoder(encoder_handle, trainable=trainable, module=module, name="encoder")
    carried = None
    if hasattr(module, "vocab_file") and hasattr(module, "do_lower_case"):
        carried = (module.vocab_file.asset_path.numpy().decode("utf-8"), bool(module.do_lower_case.numpy()))
    return encoder, f"HubEncoder over the TF Hub SavedModel {path!r} ({reason})", carried


def position_table_size(encoder):
    """How many positions the encoder's position embeddings hold (None when it cannot be told)."""
    size = getattr(encoder, "max_sequence_length", None)
    if size is not None:
        return int(size)
    tables = [variable.shape[0] for variable in encoder.weights
              if "position" in variable.path.lower() and len(variable.shape) == 2]
    return int(tables[0]) if len(tables) == 1 else None


def _checked(backbone):
    """Refuses a preprocessor whose `seq_length` the encoder's position table cannot hold."""
    positions = position_table_size(backbone.encoder)
    if positions is not None and backbone.seq_length > positions:
        raise ValueError(
            f"seq_length={backbone.seq_length} is longer than the encoder {backbone.name!r} supports: its position "
            f"embeddings hold {positions} tokens. Pass seq_length={positions} or less."
        )
    return backbone


def _matching_preprocessor(override, default_handle, carried_vocabulary, handle, options):
    if isinstance(override, Preprocessor):
        return override
    if override is not None:
        return HubPreprocessor(override, **options)
    if default_handle is not None:
        return HubPreprocessor(default_handle, **options)
    # Published encoders carry their vocabulary and casing (the legacy `vocab_file` / `do_lower_case` extras).
    if carried_vocabulary is not None:
        vocab_file, lower_case = carried_vocabulary
        return WordPiecePreprocessor(vocab_file, lower_case=lower_case, **options)
    raise ValueError(
        f"No preprocessor is known for the encoder {handle!r}: pass preprocessor=<URL or SavedModel directory of "
        "its TF Hub preprocessing model>, e.g. 'https://tfhub.dev/tensorflow/bert_en_uncased_preprocess/3' for "
        "uncased English BERTs."
    )


def _package_model_path(spec):
    try:
        package = importlib.import_module(spec.encoder)
    except ImportError as error:
        raise ImportError(
            f"The backbone {spec.name!r} ships as the Python package {spec.encoder!r}, which is not installed. "
            f"Install it with: {spec.install}"
        ) from error
    return package.get_model_path()


def _load_huggingface(path, handle, options, trainable, preprocessor, dtype, native):
    from tunekit.backbones.huggingface import load_huggingface_checkpoint

    if native is False:
        raise ValueError(f"native=False keeps a TF Hub SavedModel encoder on the SavedModel path; {handle!r} is a "
                         "Hugging Face checkpoint, which tunekit always reads natively. Leave native unset.")
    encoder, vocabulary, lower_case = load_huggingface_checkpoint(path, dtype=resolve_dtype(dtype))
    encoder.trainable = trainable
    if not isinstance(preprocessor, Preprocessor):
        preprocessor = (
            HubPreprocessor(preprocessor, **options)
            if preprocessor is not None
            else WordPiecePreprocessor(vocabulary, lower_case=lower_case, **options)
        )
    # Sentence-embedding checkpoints (all-MiniLM and kin) ship an untrained pooler; a masked mean of the token
    # vectors is what they were trained to produce, and it fine-tunes as well as the pooler on plain BERTs.
    return _checked(Backbone(encoder=encoder, preprocessor=preprocessor, name=handle, pooling="mean",
                             loaded_as=f"native BertEncoder read from the Hugging Face checkpoint {path!r}"))
