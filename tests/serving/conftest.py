"""Fixtures of the serving tests: tiny exported models, and a real server process on a free port."""

import pytest
from server_process import API_KEY, LABELS_V1, LABELS_V2, OTHER_KEY, ServerProcess


@pytest.fixture(scope="session")
def exports(tmp_path_factory, hub_models):
    """Tiny exports: `sentiment` with versions 1 and 2 (different heads and labels), and a text-pair model.

    Returns {"sentiment": base dir, "pairs": dir, "v1": dir, "v2": dir}.
    """
    import keras

    import tunekit as tk

    root = tmp_path_factory.mktemp("exports")
    backbone = tk.load_backbone(hub_models["encoder"], preprocessor=hub_models["preprocessor"], seq_length=16)
    keras.utils.set_random_seed(0)
    tk.export_model(tk.attach_head(backbone, "classification", labels=LABELS_V1, seed=1), root / "sentiment" / "1")
    tk.export_model(tk.attach_head(backbone, "classification", labels=LABELS_V2, seed=2), root / "sentiment" / "2")
    tk.export_model(tk.attach_head(backbone, "classification", labels=LABELS_V1, text_pairs=True, seed=3),
                    root / "pairs")
    return {"sentiment": str(root / "sentiment"), "pairs": str(root / "pairs"),
            "v1": str(root / "sentiment" / "1"), "v2": str(root / "sentiment" / "2")}


@pytest.fixture(scope="session")
def server(exports, tmp_path_factory):
    """`tunekit serve` of both models, keys from TUNEKIT_API_KEYS, small limits, batches of up to 8 texts within
    50 ms."""
    process = ServerProcess(
        [exports["sentiment"], exports["pairs"], "--name", "sentiment", "--name", "pairs",
         "--max-batch-size", "8", "--max-wait-ms", "50", "--max-texts", "8", "--max-text-bytes", "200"],
        tmp_path_factory.mktemp("server"), env={"TUNEKIT_API_KEYS": f"{API_KEY}, {OTHER_KEY}"})
    try:
        process.wait_until("/v2/health/ready")
        yield process
    finally:
        process.stop()
