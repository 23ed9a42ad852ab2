"""tunekit.datasets.sst2 and rt_polarity on made-up copies in GLUE / Cornell / CSV layouts, and on the real data."""

from collections import Counter

import numpy as np
import pytest

from tunekit import datasets

def test_sst2_from_glue_tsv_folder(tmp_path):
    glue_dir = tmp_path / "glue_data" / "SST-2"
    glue_dir.mkdir(parents=True)
    # GLUE's TSVs are not quoted: a text may start with a quote character.
    (glue_dir / "train.tsv").write_text('sentence\tlabel\n" funny " and warm \t1\ndull , dull \t0\nfine \t1\n')
    (glue_dir / "dev.tsv").write_text("sentence\tlabel\nit 's a charming journey . \t1\n")
    texts, labels = datasets.sst2("train", data_dir=glue_dir)
    assert sorted(zip(texts, labels.tolist())) == [('" funny " and warm ', 1), ("dull , dull ", 0), ("fine ", 1)]
    # data_dir may also be the folder above SST-2/.
    texts, labels = datasets.sst2("validation", data_dir=tmp_path / "glue_data")
    assert (texts, labels.tolist()) == (["it 's a charming journey . "], [1])


def test_sst2_from_csv_with_limit(tmp_path):
    rows = "".join(f"phrase {i},{int(i % 4 != 0)}\n" for i in range(40))
    (tmp_path / "train.csv").write_text("text,label\n" + rows)
    texts, labels = datasets.sst2("train", data_dir=tmp_path, limit=8, seed=2)
    assert len(texts) == 8 and Counter(labels.tolist()) == {1: 6, 0: 2}  # class proportions kept
    assert datasets.sst2("train", data_dir=tmp_path, limit=8, seed=2)[0] == texts


def test_sst2_errors(tmp_path):
    with pytest.raises(ValueError, match=r"split must be one of \['train', 'validation'\], got 'test'"):
        datasets.sst2("test", data_dir=tmp_path)
    missing_dev = r"SST-2 validation: found none of \['dev.tsv', 'dev.csv', 'dev.csv.gz'\].*SST-2.zip"
    with pytest.raises(FileNotFoundError, match=missing_dev):
        datasets.sst2("validation", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        datasets.sst2(data_dir=tmp_path / "absent")
    (tmp_path / "train.tsv").write_text("index\tsentence\n0\ta test row\n")
    with pytest.raises(ValueError, match="must have GLUE's columns sentence<TAB>label"):
        datasets.sst2(data_dir=tmp_path)


def test_sst2_rejects_labels_other_than_0_and_1(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\ngood,1\nbad,-1\n")
    with pytest.raises(ValueError, match=r"labels must be 0 \(negative\) or 1 \(positive\)"):
        datasets.sst2(data_dir=tmp_path)


def test_rt_polarity_from_original_files(tmp_path):
    folder = tmp_path / "rt-polaritydata"
    folder.mkdir()
    # The originals are Windows-1252 with LF line ends; most lines end with a space.
    (folder / "rt-polarity.neg").write_bytes("a flat , lifeless caf\u00e9 drama . \nboring \u2026 \n".encode("cp1252"))
    (folder / "rt-polarity.pos").write_bytes("a gem . \n".encode("cp1252"))
    texts, labels = datasets.rt_polarity(data_dir=tmp_path)
    assert sorted(zip(texts, labels.tolist())) == [
        ("a flat , lifeless caf\u00e9 drama . ", 0), ("a gem . ", 1), ("boring \u2026 ", 0)
    ]


def test_rt_polarity_from_csv(tmp_path):
    (tmp_path / "all.csv").write_text("text,label\nbad . ,0\ngood . ,1\n")
    texts, labels = datasets.rt_polarity(data_dir=tmp_path, seed=3)
    assert sorted(zip(texts, labels.tolist())) == [("bad . ", 0), ("good . ", 1)]


def test_rt_polarity_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"MR \(rt-polarity\): found none of .*rt-polaritydata.tar.gz"):
        datasets.rt_polarity(data_dir=tmp_path)
    (tmp_path / "rt-polarity.neg").write_text("bad . \n")
    with pytest.raises(FileNotFoundError, match=r"found .*rt-polarity.neg but not .*rt-polarity.pos"):
        datasets.rt_polarity(data_dir=tmp_path)


def test_real_sst2(shared_data):
    texts, labels = datasets.sst2("train", data_dir=shared_data("sst2").parent)
    assert len(texts) == 67349 and int(labels.sum()) == 37569
    texts, labels = datasets.sst2("validation", data_dir=shared_data("sst2"))
    assert len(texts) == 872 and int(labels.sum()) == 444


def test_real_rt_polarity_from_csv_and_from_original_files_agree(shared_data):
    texts, labels = datasets.rt_polarity(data_dir=shared_data("rt_polarity").parent)
    assert len(texts) == 10662 and int(labels.sum()) == 5331
    raw_texts, raw_labels = datasets.rt_polarity(data_dir=shared_data("rt_polarity") / "raw")
    assert raw_texts == texts  # same rows, same seeded order
    np.testing.assert_array_equal(raw_labels, labels)
