"""Shared fixtures: tiny TF Hub-format BERT models built once per test session.

The published TF Hub models cannot be downloaded here, so the tests use two kinds of stand-ins:
- `model_garden`: tiny encoders and a preprocessor exported by TF Model Garden's own exporter (the code that wrote
  the published ones), committed as test data; tunekit converts such encoders to its native encoder;
- `hub_models`: a look-alike with the same interface written by tunekit's own TF Hub-format writers, whose
  variable names tunekit does not convert: it exercises the SavedModel (`HubEncoder`) fallback path.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["TUNEKIT_OFFLINE"] = "1"  # no test may touch the network
os.environ.pop("TUNEKIT_DTYPE", None)  # a developer's setting would change what encoders compute in

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from sample_texts import VOCAB  # noqa: E402

SHARED_DATA_ENV = "TUNEKIT_SHARED_DATA"


@pytest.fixture(scope="session")
def shared_data():
    """`shared_data("imdb")` -> the folder of one of the real public datasets (see ../shared/data/README.md): under
    `$TUNEKIT_SHARED_DATA` when it is set, else `shared/data` beside the repository (the clone's `../shared/data`).
    A missing folder fails the test, saying where it looked, rather than skipping it."""
    root = Path(os.environ.get(SHARED_DATA_ENV) or Path(__file__).resolve().parents[2] / "shared" / "data")

    def locate(name):
        folder = root / name
        if not folder.is_dir():
            where = f"${SHARED_DATA_ENV}" if os.environ.get(SHARED_DATA_ENV) else "../shared/data beside the repository"
            pytest.fail(f"The shared dataset {name!r} is not at {folder} (looked in {where}): set {SHARED_DATA_ENV} "
                        f"to the folder that holds {name}/ (the project's shared/data).", pytrace=False)
        return folder

    return locate


@pytest.fixture(scope="session")
def vocab_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="session")
def hub_models(tmp_path_factory, vocab_file):
    """Paths of a tiny TF Hub-format encoder and preprocessor: {"encoder": dir, "preprocessor": dir}."""
    import keras

    from tunekit.backbones.bert import BertEncoder
    from tunekit.backbones.hub_format import save_hub_encoder
    from tunekit.preprocessing.wordpiece import save_hub_preprocessor

    root = tmp_path_factory.mktemp("hub")
    keras.utils.set_random_seed(1)
    encoder = BertEncoder(vocabulary_size=len(VOCAB), hidden_size=32, num_layers=2, num_heads=4,
                          intermediate_size=64, max_sequence_length=128)
    save_hub_encoder(encoder, root / "encoder", vocab_file=vocab_file, do_lower_case=True)
    save_hub_preprocessor(vocab_file, root / "preprocessor", lower_case=True)
    return {"encoder": str(root / "encoder"), "preprocessor": str(root / "preprocessor")}


MODEL_GARDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "model_garden")


@pytest.fixture(scope="session")
def model_garden():
    """Paths of TF Hub encoders and a preprocessor exported by TF Model Garden's own code (the published format),
    committed under tests/fixtures/model_garden by tests/fixtures/make_model_garden_encoders.py:
    {"encoder": 2-layer BERT with tanh GELU, "exact_gelu": the same with exact GELU, "factorised": factorised
    embeddings (not convertible), "preprocessor": bert_uncased_preprocess}."""
    return {key: os.path.join(MODEL_GARDEN, name) for key, name in {
        "encoder": "bert_uncased_L-2_H-32_A-4",
        "exact_gelu": "bert_uncased_L-2_H-32_A-4_exact_gelu",
        "factorised": "bert_uncased_L-2_H-32_A-4_E-16",
        "preprocessor": "bert_uncased_preprocess",
    }.items()}


def make_backbone(seed=1, num_layers=2):
    """A fresh `Backbone` with a random 2-layer, H=32 native encoder; the same `seed` gives the same weights."""
    import keras

    from tunekit.backbones.backbone import Backbone
    from tunekit.backbones.bert import BertEncoder
    from tunekit.preprocessing.wordpiece import WordPiecePreprocessor

    keras.utils.set_random_seed(seed)
    encoder = BertEncoder(vocabulary_size=len(VOCAB), hidden_size=32, num_layers=num_layers, num_heads=4,
                          intermediate_size=64, max_sequence_length=32, name="encoder")
    encoder.build()
    preprocessor = WordPiecePreprocessor(VOCAB, seq_length=16, name="preprocessor")
    return Backbone(encoder=encoder, preprocessor=preprocessor, name=f"tiny-bert-{seed}", pooling="mean")


@pytest.fixture(scope="session")
def new_backbone():
    """`new_backbone(seed=1, num_layers=2)` -> a fresh tiny native `Backbone` (same seed, same weights)."""
    return make_backbone


@pytest.fixture
def backbone(hub_models):
    import tunekit as tk

    return tk.load_backbone(hub_models["encoder"], preprocessor=hub_models["preprocessor"], seq_length=16)
