"""Tests of tunekit.metrics against hand-computed answers, a port of conlleval, and (when installed)
scikit-learn, scipy and seqeval."""

import gzip
import math
import random

import numpy as np
import pytest

from tunekit.metrics import (
    classification_metrics,
    entity_metrics,
    extract_entities,
    multilabel_metrics,
    regression_metrics,
)

# ----------------------------------------------------------------------------------------------------------------------
# classification_metrics
# ----------------------------------------------------------------------------------------------------------------------


def one_hot(ids, num_classes):
    return np.eye(num_classes)[np.asarray(ids)]


def test_binary_metrics_are_those_of_class_1():
    # true 1 1 1 0 0 ; predicted 1 0 1 1 0 -> TP=2 FP=1 FN=1 TN=1
    y_true = [1, 1, 1, 0, 0]
    probabilities = [[0.1, 0.9], [0.6, 0.4], [0.3, 0.7], [0.45, 0.55], [0.8, 0.2]]
    metrics = scores(classification_metrics(y_true, probabilities))
    assert metrics == pytest.approx({"accuracy": 3 / 5, "precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3})
    assert all(type(value) is float for value in metrics.values())


def test_multiclass_metrics_are_macro_averages():
    y_true = [0, 0, 1, 1, 2, 2]
    predicted = [0, 1, 1, 1, 0, 2]
    # class 0: TP1 FP1 FN1 -> P 1/2 R 1/2 F 1/2 ; class 1: TP2 FP1 FN0 -> P 2/3 R 1 F 4/5 ; class 2: P 1 R 1/2 F 2/3
    metrics = classification_metrics(y_true, one_hot(predicted, 3))
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["precision"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert metrics["recall"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    assert metrics["f1"] == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)


def test_zero_denominators_count_as_zero():
    # Binary, the positive class is never predicted nor true: everything but accuracy is 0.
    assert scores(classification_metrics([0, 0], [[0.9, 0.1], [0.8, 0.2]])) == {
        "accuracy": 1.0, "precision": 0.0, "recall": 0.0, "f1": 0.0
    }
    # 3 classes: class 2 is true once but never predicted (P = 0/0 -> 0, R = 0, F = 0).
    metrics = classification_metrics([0, 1, 2], one_hot([0, 1, 1], 3))
    assert metrics["precision"] == pytest.approx((1 + 1 / 2 + 0) / 3)
    assert metrics["recall"] == pytest.approx((1 + 1 + 0) / 3)


def test_macro_average_skips_classes_absent_from_labels_and_predictions():
    # 4 columns, class 3 never occurs: a perfect prediction scores 1, as scikit-learn's average="macro".
    assert classification_metrics([0, 1, 2], one_hot([0, 1, 2], 4))["f1"] == 1.0


def test_logits_and_float_labels_are_accepted():
    metrics = classification_metrics(np.array([1.0, 0.0]), np.array([[-2.0, 3.0], [5.0, -1.0]]))
    assert metrics["accuracy"] == 1.0


@pytest.mark.parametrize(
    "y_true, probabilities, message",
    [
        ([0, 1], [[0.5, 0.5]], "y_true has 2 rows but probabilities has 1"),
        ([], np.zeros((0, 2)), "probabilities is empty"),
        ([0, 1], [0.2, 0.8], "must be a 2-D array"),
        ([0, 1], [[0.2], [0.8]], "at least 2 columns"),
        ([0, 3], [[0.2, 0.8], [0.5, 0.5]], r"outside \[0, 1\]"),
        ([0, -1], [[0.2, 0.8], [0.5, 0.5]], r"outside \[0, 1\]"),
        ([0, 0.5], [[0.2, 0.8], [0.5, 0.5]], "integer class ids"),
        ([0, 1], [[np.nan, 0.8], [0.5, 0.5]], "NaN"),
        ([[0], [1]], [[0.2, 0.8], [0.5, 0.5]], "1-D array"),
    ],
)
def test_classification_input_errors(y_true, probabilities, message):
    with pytest.raises(ValueError, match=message):
        classification_metrics(y_true, probabilities)


def scores(metrics):
    return {name: metrics[name] for name in ("accuracy", "precision", "recall", "f1")}


@pytest.mark.parametrize("num_classes", [2, 3, 5])
def test_classification_matches_sklearn(num_classes):
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(num_classes)
    for _ in range(20):
        y_true = rng.integers(0, num_classes, size=40)
        probabilities = rng.dirichlet(np.ones(num_classes) * 0.5, size=40)
        predicted = probabilities.argmax(axis=1)
        average = "binary" if num_classes == 2 else "macro"
        expected = {
            "accuracy": sklearn_metrics.accuracy_score(y_true, predicted),
            "precision": sklearn_metrics.precision_score(y_true, predicted, average=average, zero_division=0),
            "recall": sklearn_metrics.recall_score(y_true, predicted, average=average, zero_division=0),
            "f1": sklearn_metrics.f1_score(y_true, predicted, average=average, zero_division=0),
        }
        metrics = classification_metrics(y_true, probabilities, [f"class {i}" for i in range(num_classes)])
        assert scores(metrics) == pytest.approx(expected)
        assert metrics["confusion_matrix"]["matrix"] == sklearn_metrics.confusion_matrix(
            y_true, predicted, labels=range(num_classes)).tolist()
        precision, recall, f1, support = sklearn_metrics.precision_recall_fscore_support(
            y_true, predicted, labels=range(num_classes), zero_division=0)
        for i in range(num_classes):
            assert metrics["per_class"][f"class {i}"] == pytest.approx(
                {"precision": precision[i], "recall": recall[i], "f1": f1[i], "support": support[i]})


def test_confusion_matrix_has_label_names():
    metrics = classification_metrics([0, 1, 1], one_hot([0, 0, 1], 2), ["neg", "pos"])
    assert metrics["confusion_matrix"] == {"labels": ["neg", "pos"], "matrix": [[1, 0], [1, 1]]}
    assert metrics["per_class"]["pos"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    with pytest.raises(ValueError, match="3 label names for 2 classes"):
        classification_metrics([0], one_hot([0], 2), ["a", "b", "c"])


# ----------------------------------------------------------------------------------------------------------------------
# multilabel_metrics
# ----------------------------------------------------------------------------------------------------------------------


def test_multilabel_hand_computed():
    y_true = [[1, 0, 1], [0, 1, 0], [1, 1, 0]]
    probabilities = [[0.9, 0.6, 0.7], [0.2, 0.8, 0.1], [0.7, 0.3, 0.2]]
    # predicted at 0.5: [1 1 1], [0 1 0], [1 0 0]
    metrics = multilabel_metrics(y_true, probabilities, thresholds=0.5)
    # TP = 2 + 1 + 1 = 4, FP = 1, FN = 1; label F1s: 1, 1/2 (TP1 FP1 FN1), 1
    assert metrics == pytest.approx({
        "subset_accuracy": 1 / 3,
        "hamming_accuracy": 7 / 9,
        "micro_precision": 4 / 5,
        "micro_recall": 4 / 5,
        "micro_f1": 4 / 5,
        "macro_f1": (1 + 1 / 2 + 1) / 3,
    })


def test_multilabel_per_label_thresholds_are_inclusive():
    y_true = [[1, 0], [0, 1]]
    probabilities = [[0.3, 0.6], [0.1, 0.9]]
    # label 0 cut at 0.3 (0.3 >= 0.3 counts as positive), label 1 cut at 0.95 (never predicted).
    metrics = multilabel_metrics(y_true, probabilities, thresholds=[0.3, 0.95])
    assert metrics["hamming_accuracy"] == 3 / 4
    assert metrics["micro_precision"] == 1.0
    assert metrics["micro_recall"] == 1 / 2
    assert metrics["macro_f1"] == 1 / 2  # label 0: F1 1; label 1: never predicted -> 0


def test_multilabel_label_never_true_nor_predicted_scores_zero_f1():
    metrics = multilabel_metrics([[1, 0]], [[0.9, 0.1]])
    assert metrics["subset_accuracy"] == 1.0
    assert metrics["macro_f1"] == 1 / 2


@pytest.mark.parametrize(
    "y_true, probabilities, thresholds, message",
    [
        ([[1, 0]], [[0.5, 0.5], [0.1, 0.2]], 0.5, "shape"),
        ([[1, 2]], [[0.5, 0.5]], 0.5, "only 0 and 1"),
        ([[1, 0]], [[0.5, 0.5]], [0.5, 0.5, 0.5], "one value per label"),
        ([[1, 0]], [[0.5, 0.5]], float("nan"), "finite"),
        ([1, 0], [0.5, 0.5], 0.5, "2-D"),
        (np.zeros((0, 2)), np.zeros((0, 2)), 0.5, "empty"),
    ],
)
def test_multilabel_input_errors(y_true, probabilities, thresholds, message):
    with pytest.raises(ValueError, match=message):
        multilabel_metrics(y_true, probabilities, thresholds)


def test_multilabel_matches_sklearn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for _ in range(20):
        y_true = rng.integers(0, 2, size=(30, 4))
        probabilities = rng.random((30, 4))
        thresholds = rng.uniform(0.2, 0.8, size=4)
        predicted = (probabilities >= thresholds).astype(int)
        expected = {
            "subset_accuracy": sklearn_metrics.accuracy_score(y_true, predicted),
            "hamming_accuracy": 1 - sklearn_metrics.hamming_loss(y_true, predicted),
            "micro_precision": sklearn_metrics.precision_score(y_true, predicted, average="micro", zero_division=0),
            "micro_recall": sklearn_metrics.recall_score(y_true, predicted, average="micro", zero_division=0),
            "micro_f1": sklearn_metrics.f1_score(y_true, predicted, average="micro", zero_division=0),
            "macro_f1": sklearn_metrics.f1_score(y_true, predicted, average="macro", zero_division=0),
        }
        assert multilabel_metrics(y_true, probabilities, thresholds) == pytest.approx(expected)


# ----------------------------------------------------------------------------------------------------------------------
# regression_metrics
# ----------------------------------------------------------------------------------------------------------------------


def test_regression_hand_computed():
    metrics = regression_metrics([1.0, 2.0, 3.0, 4.0], [1.5, 2.0, 2.5, 5.0])
    # errors 0.5 0 -0.5 1 ; Pearson = 5.5 / sqrt(5 * 7.25) ; the predictions keep the order of the targets
    assert metrics == pytest.approx({
        "mse": 0.375, "mae": 0.5, "rmse": math.sqrt(0.375), "pearson": 5.5 / math.sqrt(5 * 7.25), "spearman": 1.0
    })


def test_spearman_uses_average_ranks_for_ties():
    # ranks of y_true: 1 2.5 2.5 4 ; ranks of predictions: 1 2 3 4
    # Pearson of those ranks: centred (-1.5 0 0 1.5) . (-1.5 -0.5 0.5 1.5) = 4.5 over sqrt(4.5 * 5)
    metrics = regression_metrics([1.0, 2.0, 2.0, 3.0], [0.1, 0.2, 0.3, 0.4])
    assert metrics["spearman"] == pytest.approx(4.5 / math.sqrt(4.5 * 5))


def test_regression_averages_over_outputs():
    y_true = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    predictions = np.array([[1.0, 12.0], [2.0, 18.0], [4.0, 30.0]])
    metrics = regression_metrics(y_true, predictions)
    # output 0: errors 0 0 1 -> MSE 1/3 ; output 1: errors 2 -2 0 -> MSE 8/3
    assert metrics["mse"] == pytest.approx((1 / 3 + 8 / 3) / 2)
    assert metrics["mae"] == pytest.approx((1 / 3 + 4 / 3) / 2)
    assert metrics["rmse"] == pytest.approx((math.sqrt(1 / 3) + math.sqrt(8 / 3)) / 2)


def test_regression_accepts_one_column_predictions_for_1d_targets():
    assert regression_metrics([1.0, 2.0, 4.0], [[1.0], [2.0], [4.0]]) == pytest.approx(
        {"mse": 0.0, "mae": 0.0, "rmse": 0.0, "pearson": 1.0, "spearman": 1.0}
    )


def test_correlations_are_nan_for_constant_values():
    metrics = regression_metrics([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])
    assert math.isnan(metrics["pearson"]) and math.isnan(metrics["spearman"])
    assert metrics["mse"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "y_true, predictions, message",
    [
        ([1.0, 2.0], [1.0, 2.0, 3.0], "shape"),
        ([], [], "empty"),
        ([1.0, np.inf], [1.0, 2.0], "infinite"),
        (np.zeros((2, 2, 2)), np.zeros((2, 2, 2)), r"\[N\] or \[N, K\]"),
    ],
)
def test_regression_input_errors(y_true, predictions, message):
    with pytest.raises(ValueError, match=message):
        regression_metrics(y_true, predictions)


def test_regression_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    for _ in range(20):
        y_true = rng.integers(0, 6, size=50).astype(float)  # many ties
        predictions = y_true + rng.normal(0, 2, size=50).round(1)
        metrics = regression_metrics(y_true, predictions)
        assert metrics["pearson"] == pytest.approx(stats.pearsonr(y_true, predictions).statistic)
        assert metrics["spearman"] == pytest.approx(stats.spearmanr(y_true, predictions).statistic)


# ----------------------------------------------------------------------------------------------------------------------
# extract_entities / entity_metrics
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tags, expected",
    [
        ("I-PER I-PER B-PER", [("PER", 0, 2), ("PER", 2, 3)]),  # IOB1: B- separates two PER entities
        ("I-PER I-LOC I-LOC", [("PER", 0, 1), ("LOC", 1, 3)]),  # IOB1: a type change starts an entity
        ("B-PER I-PER O B-LOC", [("PER", 0, 2), ("LOC", 3, 4)]),
        ("B-PER B-PER", [("PER", 0, 1), ("PER", 1, 2)]),
        ("O I-PER I-PER", [("PER", 1, 3)]),  # stray I- after O starts an entity (conlleval)
        ("B-PER I-LOC", [("PER", 0, 1), ("LOC", 1, 2)]),  # stray I- of another type starts an entity
        ("B-ORG I-ORG I-ORG", [("ORG", 0, 3)]),  # entity running to the end of the sentence
        ("B-geo-loc I-geo-loc O", [("geo-loc", 0, 2)]),  # types may contain hyphens
        ("O O", []),
        ("", []),
    ],
)
def test_extract_entities_known_answers(tags, expected):
    tags = tags.split()
    assert extract_entities(tags) == expected
    assert extract_entities(tags, scheme="IOB1") == expected


def test_extract_entities_rejects_bad_tags_and_schemes():
    with pytest.raises(ValueError, match="IOBES/BILOU tags are not supported"):
        extract_entities(["S-PER"])
    with pytest.raises(ValueError, match="Invalid IOB tag 'PER'"):
        extract_entities(["PER"])
    with pytest.raises(ValueError, match="Invalid IOB tag 'B-'"):
        extract_entities(["B-"])
    with pytest.raises(ValueError, match="scheme must be one of"):
        extract_entities(["O"], scheme="BIO")


def test_entity_metrics_known_answer():
    # The example of seqeval's README: one MISC entity is one token too long.
    gold = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    pred = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    metrics = entity_metrics(gold, pred)
    assert metrics["precision"] == metrics["recall"] == metrics["f1"] == 0.5
    assert metrics["token_accuracy"] == 0.8  # tokens 2 and 3 are wrong
    assert metrics["per_type"] == {
        "MISC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
        "PER": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1},
    }


def test_entity_metrics_iob1_gold_against_iob2_predictions():
    # The same two PER entities written in IOB1 (gold) and IOB2 (predictions) are all correct.
    gold = [["I-PER", "I-PER", "B-PER", "O", "I-LOC"]]
    pred = [["B-PER", "I-PER", "B-PER", "O", "B-LOC"]]
    metrics = entity_metrics(gold, pred, scheme="IOB1")
    assert (metrics["precision"], metrics["recall"], metrics["f1"]) == (1.0, 1.0, 1.0)
    assert metrics["token_accuracy"] == 3 / 5  # tokens 1, 2 and 3


def test_entity_metrics_per_type_includes_predicted_only_types():
    metrics = entity_metrics([["B-PER", "O"]], [["B-PER", "B-ORG"]])
    assert metrics["precision"] == 0.5 and metrics["recall"] == 1.0
    assert metrics["f1"] == pytest.approx(2 / 3)
    assert metrics["per_type"]["ORG"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_entity_metrics_without_entities():
    metrics = entity_metrics([["O", "O"]], [["O", "O"]])
    assert (metrics["precision"], metrics["recall"], metrics["f1"], metrics["token_accuracy"]) == (0.0, 0.0, 0.0, 1.0)
    assert metrics["per_type"] == {}


@pytest.mark.parametrize(
    "gold, pred, message",
    [
        ([["O"]], [["O"], ["O"]], "1 sentences but pred_tags has 2"),
        ([], [], "empty"),
        ([["O", "B-PER"]], [["O"]], "Sentence 0 has 2 true tags but 1 predicted tags"),
        ([[]], [[]], "no tokens"),
        (["B-PER", "O"], ["B-PER", "O"], "Sentence 0 is a string"),
        ("B-PER O", "B-PER O", "not strings"),
        ([["X-PER"]], [["O"]], "Invalid IOB tag 'X-PER'"),
    ],
)
def test_entity_metrics_input_errors(gold, pred, message):
    with pytest.raises(ValueError, match=message):
        entity_metrics(gold, pred)


def conlleval_counts(gold_sentences, pred_sentences):
    """A line-by-line port of the counting loop of conlleval.pl (v2004-01-26), IOB tags only.

    Returns (correct_chunks, found_guessed, found_correct, correct_tags, tokens) and per-type dicts of the first
    three. Sentence boundaries are fed in as an uncounted "O O" line, as the script does with blank lines.
    """

    def split(tag):
        return tuple(tag.split("-", 1)) if "-" in tag else (tag, "")

    def end_of_chunk(prev_tag, tag, prev_type, type_):
        return (
            (prev_tag, tag) in {("B", "B"), ("B", "O"), ("I", "B"), ("I", "O")}
            or (prev_tag != "O" and prev_tag != "." and prev_type != type_)
        )

    def start_of_chunk(prev_tag, tag, prev_type, type_):
        return (
            (prev_tag, tag) in {("B", "B"), ("I", "B"), ("O", "B"), ("O", "I")}
            or (tag != "O" and tag != "." and prev_type != type_)
        )

    lines = []
    for gold, pred in zip(gold_sentences, pred_sentences):
        lines += [(False, g, p) for g, p in zip(gold, pred)] + [(True, "O", "O")]
    correct_chunk = found_guessed = found_correct = correct_tags = tokens = 0
    by_type = {"correct": {}, "guessed": {}, "gold": {}}
    in_correct = False
    last_correct, last_correct_type, last_guessed, last_guessed_type = "O", "", "O", ""
    for is_boundary, gold_tag, pred_tag in lines:
        correct, correct_type = split(gold_tag)
        guessed, guessed_type = split(pred_tag)
        gold_ends = end_of_chunk(last_correct, correct, last_correct_type, correct_type)
        pred_ends = end_of_chunk(last_guessed, guessed, last_guessed_type, guessed_type)
        if in_correct:
            if gold_ends and pred_ends and last_guessed_type == last_correct_type:
                in_correct = False
                correct_chunk += 1
                by_type["correct"][last_correct_type] = by_type["correct"].get(last_correct_type, 0) + 1
            elif gold_ends != pred_ends or guessed_type != correct_type:
                in_correct = False
        gold_starts = start_of_chunk(last_correct, correct, last_correct_type, correct_type)
        pred_starts = start_of_chunk(last_guessed, guessed, last_guessed_type, guessed_type)
        if gold_starts and pred_starts and guessed_type == correct_type:
            in_correct = True
        if gold_starts:
            found_correct += 1
            by_type["gold"][correct_type] = by_type["gold"].get(correct_type, 0) + 1
        if pred_starts:
            found_guessed += 1
            by_type["guessed"][guessed_type] = by_type["guessed"].get(guessed_type, 0) + 1
        if not is_boundary:
            correct_tags += correct == guessed and guessed_type == correct_type
            tokens += 1
        last_correct, last_correct_type, last_guessed, last_guessed_type = correct, correct_type, guessed, guessed_type
    if in_correct:
        correct_chunk += 1
        by_type["correct"][last_correct_type] = by_type["correct"].get(last_correct_type, 0) + 1
    return (correct_chunk, found_guessed, found_correct, correct_tags, tokens), by_type


def random_tag_sentences(rng, count, tags):
    return [[rng.choice(tags) for _ in range(rng.randint(1, 12))] for _ in range(count)]


@pytest.mark.parametrize("seed", range(5))
def test_entity_metrics_match_conlleval_on_random_tags(seed):
    rng = random.Random(seed)
    tags = ["O", "O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "I-ORG"]
    gold = random_tag_sentences(rng, 200, tags)
    # Predictions: gold with about a quarter of the tags replaced, so that many entities match.
    pred = [[rng.choice(tags) if rng.random() < 0.25 else tag for tag in sentence] for sentence in gold]
    (correct, guessed, found, correct_tags, tokens), by_type = conlleval_counts(gold, pred)
    assert correct > 0

    metrics = entity_metrics(gold, pred)
    precision, recall = correct / guessed, correct / found
    assert metrics["precision"] == pytest.approx(precision)
    assert metrics["recall"] == pytest.approx(recall)
    assert metrics["f1"] == pytest.approx(2 * precision * recall / (precision + recall))
    assert metrics["token_accuracy"] == pytest.approx(correct_tags / tokens)
    for entity_type, scores in metrics["per_type"].items():
        assert scores["support"] == by_type["gold"].get(entity_type, 0)
        guessed_of_type = by_type["guessed"].get(entity_type, 0)
        correct_of_type = by_type["correct"].get(entity_type, 0)
        assert scores["precision"] == pytest.approx(correct_of_type / guessed_of_type if guessed_of_type else 0.0)


def test_entity_metrics_match_seqeval():
    seqeval_metrics = pytest.importorskip("seqeval.metrics")
    rng = random.Random(7)
    tags = ["O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
    gold = random_tag_sentences(rng, 300, tags)
    pred = [[rng.choice(tags) if rng.random() < 0.2 else tag for tag in sentence] for sentence in gold]
    metrics = entity_metrics(gold, pred)
    assert metrics["precision"] == pytest.approx(seqeval_metrics.precision_score(gold, pred))
    assert metrics["recall"] == pytest.approx(seqeval_metrics.recall_score(gold, pred))
    assert metrics["f1"] == pytest.approx(seqeval_metrics.f1_score(gold, pred))
    assert metrics["token_accuracy"] == pytest.approx(seqeval_metrics.accuracy_score(gold, pred))
    report = seqeval_metrics.classification_report(gold, pred, output_dict=True)
    for entity_type, scores in metrics["per_type"].items():
        assert scores["f1"] == pytest.approx(report[entity_type]["f1-score"])
        assert scores["support"] == report[entity_type]["support"]


def read_ner_tags(path):
    sentences, current = [], []
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            fields = line.split()
            if fields and fields[0] != "-DOCSTART-":
                current.append(fields[-1])
            elif current:
                sentences.append(current)
                current = []
    return sentences + ([current] if current else [])


def test_iob1_and_iob2_copies_of_conll2003_decode_to_the_same_entities(shared_data):
    # eng.testa (IOB1) and iob2/valid.txt (IOB2) hold the same sentences, though not in the same order.
    iob1 = read_ner_tags(shared_data("conll2003") / "eng.testa.gz")
    iob2 = read_ner_tags(shared_data("conll2003") / "iob2" / "valid.txt.gz")
    assert len(iob1) == len(iob2) == 3250
    entities_iob1 = sorted(tuple(extract_entities(tags, "IOB1")) for tags in iob1)
    entities_iob2 = sorted(tuple(extract_entities(tags, "IOB2")) for tags in iob2)
    assert entities_iob1 == entities_iob2
    assert sum(map(len, entities_iob1)) == 1842 + 1837 + 1341 + 922  # PER + LOC + ORG + MISC (README)
