"""Shared fixtures: tiny TF Hub-format BERT models built once per test session.

The published TF Hub models cannot be downloaded here, so the tests build their own with the same
interface: a WordPiece preprocessor SavedModel (`tokenize`, `bert_pack_inputs`) and a 2-layer encoder
SavedModel (`pooled_output`, `sequence_output`, `encoder_outputs`), both written by tunekit's own
TF Hub-format writers.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["TUNEKIT_OFFLINE"] = "1"  # no test may touch the network

import pytest  # noqa: E402
from sample_texts import VOCAB  # noqa: E402


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


@pytest.fixture
def backbone(hub_models):
    import tunekit as tk

    return tk.load_backbone(hub_models["encoder"], preprocessor=hub_models["preprocessor"], seq_length=16)
