"""`tk.distill`: a student learns the teacher's probabilities at a temperature, plus the true labels where given."""

import numpy as np
import pytest
from sample_texts import sentiment_texts

import tunekit as tk
from tunekit.training.distillation import DistillationLoss, soften

LABELS = ["neg", "pos"]


def test_the_loss_is_the_hand_computed_mix_of_cross_entropy_and_scaled_kl():
    student = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]], "float32")
    teacher = np.array([[0.5, 0.4, 0.1], [0.2, 0.2, 0.6]], "float32")
    temperature, alpha = 2.0, 0.3
    soft = soften(teacher, temperature)
    y_true = np.concatenate([np.array([[0.0], [-1.0]], "float32"), soft], axis=1)  # row 1 has no true label
    loss = DistillationLoss(temperature, alpha, reduction=None)(y_true, student).numpy()

    def at_temperature(p):
        z = np.exp(np.log(p) / temperature)
        return z / z.sum()

    expected = []
    for row, label in ((0, 0), (1, None)):
        q, p = at_temperature(teacher[row].astype("float64")), at_temperature(student[row].astype("float64"))
        kl = float(np.sum(q * np.log(q / p)))
        if label is None:
            expected.append(temperature ** 2 * kl)
        else:
            expected.append(alpha * -np.log(student[row, label]) + (1 - alpha) * temperature ** 2 * kl)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    # A plain label vector (evaluation) gets the cross-entropy.
    np.testing.assert_allclose(DistillationLoss(reduction=None)(np.array([0, 1]), student).numpy(),
                               -np.log([0.7, 0.6]), rtol=1e-6)


@pytest.fixture(scope="module")
def teacher(new_backbone):
    texts, labels = sentiment_texts(48, seed=1)
    model = tk.attach_head(new_backbone(seed=1), "classification", labels=LABELS, seed=0)
    tk.Trainer(model, learning_rate=2e-3, epochs=4, batch_size=8, seed=0, verbose=0).fit(texts, labels)
    return model


def test_a_smaller_student_learns_to_agree_with_its_teacher_and_saves_as_an_ordinary_model(teacher, tmp_path):
    texts, _ = sentiment_texts(48, seed=2)  # unlabelled for the student
    teacher_weights = [w.numpy() for w in teacher.weights]
    small = tk.backbones.drop_layers(tk.Backbone(teacher.encoder, teacher.preprocessor, "teacher", "mean"), keep=1)
    student = tk.attach_head(small, "classification", labels=LABELS, seed=3)
    before = (student.predict(texts).argmax(1) == teacher.predict(texts).argmax(1)).mean()
    trainer = tk.distill(teacher, student, texts, temperature=2.0, learning_rate=2e-3, epochs=4, batch_size=8,
                         seed=0, verbose=0)
    after = (student.predict(texts).argmax(1) == teacher.predict(texts).argmax(1)).mean()
    assert after >= 0.9 and after > before, (before, after)
    agreement = trainer.history["teacher_agreement"]  # per epoch, on the training batches, dropout on
    assert agreement[-1] >= 0.8 and agreement[-1] > agreement[0], agreement
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(teacher_weights, teacher.weights))  # teacher untouched
    trainer.save(tmp_path / "student")
    np.testing.assert_allclose(tk.load_model(tmp_path / "student").predict(texts), student.predict(texts), atol=1e-6)


def test_pairs_distil_with_true_labels_on_some_texts(new_backbone):
    first, labels = sentiment_texts(16, seed=5)
    second = list(reversed(first))
    teacher = tk.attach_head(new_backbone(seed=4), "classification", labels=LABELS, seed=0, text_pairs=True)
    student = tk.attach_head(new_backbone(seed=6), "classification", labels=LABELS, seed=1, text_pairs=True)
    given = [LABELS[l] if i % 2 else None for i, l in enumerate(labels)]
    trainer = tk.distill(teacher, student, (first, second), given, epochs=1, batch_size=8, verbose=0)
    assert len(trainer.history["loss"]) == 1 and np.isfinite(trainer.history["loss"][0])


@pytest.mark.parametrize("options, error, message", [
    ({"temperature": 0}, ValueError, "temperature must be a number > 0"),
    ({"temperature": float("nan")}, ValueError, "temperature must be a number > 0"),
    ({"alpha": 1.5}, ValueError, "alpha must be a number from 0"),
    ({"alpha": "half"}, ValueError, "alpha must be a number from 0"),
])
def test_bad_settings_are_refused_before_any_work(teacher, new_backbone, options, error, message):
    student = tk.attach_head(new_backbone(seed=7), "classification", labels=LABELS)
    before = [w.numpy() for w in student.weights]
    with pytest.raises(error, match=message):
        tk.distill(teacher, student, ["a good film"], **options)
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(before, student.weights))


def test_teacher_and_student_must_share_task_and_labels(teacher, new_backbone):
    other_labels = tk.attach_head(new_backbone(seed=7), "classification", labels=["bad", "good"])
    with pytest.raises(ValueError, match="must predict the same labels"):
        tk.distill(teacher, other_labels, ["a good film"])
    regression = tk.attach_head(new_backbone(seed=7), "regression")
    with pytest.raises(ValueError, match="single-label classification"):
        tk.distill(teacher, regression, ["a good film"])
    with pytest.raises(ValueError, match="labels has 2 entries for 1 texts"):
        tk.distill(teacher, tk.attach_head(new_backbone(seed=7), "classification", labels=LABELS), ["a"], [0, 1])
