"""Knowledge distillation with soft targets: a student learns the teacher's probabilities at a temperature.

`tk.distill(teacher, student, texts, labels=None, temperature=2.0, alpha=0.5, **trainer_options)` labels `texts`
with the teacher's probabilities, softened at `temperature`, and trains the student on them (Hinton et al. 2015):
for each text the loss is

    alpha * CE(true label, student)  +  (1 - alpha) * T^2 * KL(teacher_T || student_T)

where `teacher_T` and `student_T` are the probabilities at temperature T (softmax of the log-probabilities / T);
T^2 keeps the soft term's gradients on the scale of the hard one. Texts without a true label (`labels=None`, or
label -1) get the soft term alone, with weight 1. Works for single-label classification of texts and of text pairs;
the student can be `tk.backbones.drop_layers` of the teacher's encoder, or any backbone with the same labels.

Example:

>>> student = tk.attach_head(tk.load_backbone(encoder_dir, seq_length=16), "classification", labels=["neg", "pos"])
>>> trainer = tk.distill(model, student, texts, labels, temperature=2.0, alpha=0.5, epochs=1, batch_size=4,
...                      verbose=0)
>>> sorted(trainer.evaluate(texts, labels))[:2]
['accuracy', 'confusion_matrix']
"""

import numbers

import keras
import numpy as np
import tensorflow as tf

from tunekit.heads.classification import ClassificationTask
from tunekit.inputs.text_batches import split_segments
from tunekit.training.trainer import Trainer

NO_LABEL = -1


def distill(teacher, student, texts, labels=None, *, temperature=2.0, alpha=0.5, **trainer_options):
    """Trains `student` on `teacher`'s probabilities (and the true `labels` where given); returns its `Trainer`.

    Args:
        teacher: the trained `TextModel` (or its `Trainer`) whose predictions the student learns.
        student: a `TextModel` with the same task and labels (e.g. on `drop_layers` of the teacher's backbone).
        texts: the training texts, in any form `Trainer.fit` takes (a list of strings; `(texts_a, texts_b)` for
            pair models); unlabelled texts are where distillation helps most.
        labels: None, or one true label per text (a label name, class index, or -1 / None for "no label").
        temperature: T > 0 of the softened probabilities (1 = the teacher's own).
        alpha: weight in [0, 1] of the true-label loss where a label is given.
        **trainer_options: `tk.Trainer` options of the student's training (learning_rate, epochs, batch_size, ...).

    Raises:
        ValueError / TypeError: before any work, for a temperature ≤ 0, alpha outside [0, 1], a teacher and student
            with different tasks or labels, or a task other than single-label classification.
    """
    teacher = getattr(teacher, "model", teacher)
    from tunekit.model import TextModel

    for name, model in (("teacher", teacher), ("student", student)):
        if not isinstance(model, TextModel):
            raise TypeError(f"{name} must be a TextModel (from tk.attach_head) or its Trainer, got {type(model).__name__}.")
    if not isinstance(teacher.task, ClassificationTask) or type(teacher.task) is not type(student.task):
        raise ValueError(
            f"distill works for single-label classification of texts or pairs; the teacher's task is "
            f"{teacher.task.name!r} and the student's {student.task.name!r}.")
    if teacher.task.get_config() != student.task.get_config() or teacher.num_segments != student.num_segments:
        raise ValueError(
            "The teacher and the student must predict the same labels for the same inputs: the teacher has "
            f"{teacher.task.get_config()} on {teacher.num_segments} text(s), the student "
            f"{student.task.get_config()} on {student.num_segments}. Attach the student's head with the teacher's "
            "labels.")
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not temperature > 0 \
            or not np.isfinite(temperature):
        raise ValueError(f"temperature must be a number > 0 (2 to 4 is usual), got {temperature!r}.")
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be a number from 0 (teacher only) to 1 (true labels only), got {alpha!r}.")
    segments = split_segments(texts, student.num_segments)
    texts = segments[0] if student.num_segments == 1 else tuple(segments)
    hard = _hard_labels(student.task, labels, len(segments[0]))
    trainer = DistillationTrainer(student, temperature=float(temperature), alpha=float(alpha), **trainer_options)
    soft = soften(teacher.predict(texts), float(temperature))
    trainer.fit(texts, np.concatenate([hard[:, None].astype("float32"), soft], axis=1))
    return trainer


def soften(probabilities, temperature):
    """Probabilities at a temperature: softmax(log(p) / T), row by row."""
    logits = np.log(np.clip(np.asarray(probabilities, "float64"), 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return (exp / exp.sum(axis=1, keepdims=True)).astype("float32")


def _hard_labels(task, labels, count):
    if labels is None:
        return np.full(count, NO_LABEL, "int32")
    labels = [NO_LABEL if label is None else label for label in labels]
    if len(labels) != count:
        raise ValueError(f"labels has {len(labels)} entries for {count} texts: give one label (or None) per text.")
    given = [i for i, label in enumerate(labels) if not (isinstance(label, (int, np.integer)) and label == NO_LABEL)]
    hard = np.full(count, NO_LABEL, "int32")
    if given:
        hard[given] = task.encode_labels([labels[i] for i in given])
    return hard


@keras.saving.register_keras_serializable(package="tunekit")
class DistillationLoss(keras.losses.Loss):
    """Per text: alpha * CE(hard) + (1 - alpha) * T^2 * KL(soft || student_T) where a hard label is given, the soft
    term alone elsewhere. `y_true` is `[hard label or -1, soft targets at T...]`; `y_pred` the student's
    probabilities. A plain label vector (evaluation) gets the cross-entropy."""

    def __init__(self, temperature=2.0, alpha=0.5, **kwargs):
        super().__init__(**kwargs)
        self.temperature = temperature
        self.alpha = alpha

    def call(self, y_true, y_pred):
        log_probabilities = tf.math.log(tf.clip_by_value(tf.cast(y_pred, tf.float32), 1e-12, 1.0))
        if y_true.shape.rank == 1:
            return -tf.gather(log_probabilities, tf.cast(y_true, tf.int32), batch_dims=1)
        hard, soft = tf.cast(y_true[:, 0], tf.int32), tf.cast(y_true[:, 1:], tf.float32)
        student = tf.nn.log_softmax(log_probabilities / self.temperature, axis=-1)
        kl = tf.reduce_sum(soft * (tf.math.log(tf.clip_by_value(soft, 1e-12, 1.0)) - student), axis=-1)
        labelled = tf.cast(hard >= 0, tf.float32)
        cross_entropy = -tf.gather(log_probabilities, tf.maximum(hard, 0), batch_dims=1)
        soft_weight = 1.0 - self.alpha * labelled
        return self.alpha * labelled * cross_entropy + soft_weight * self.temperature ** 2 * kl

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature, "alpha": self.alpha}


def _teacher_agreement(y_true, y_pred):
    target = y_true[:, 1:] if y_true.shape.rank == 2 else tf.one_hot(tf.cast(y_true, tf.int32), tf.shape(y_pred)[-1])
    return tf.cast(tf.equal(tf.argmax(target, -1), tf.argmax(y_pred, -1)), tf.float32)


class DistillationTask(ClassificationTask):
    """The student's classification task, trained on `[hard label, soft targets]` rows; everything else (metrics,
    decoding, serving) is the student's own task."""

    def __init__(self, task, temperature, alpha):
        super().__init__(num_classes=task.num_classes, labels=task.labels)
        self.temperature, self.alpha = temperature, alpha

    def loss(self):
        return DistillationLoss(self.temperature, self.alpha)

    def fit_metrics(self):
        return [keras.metrics.MeanMetricWrapper(_teacher_agreement, name="teacher_agreement")]

    def encode_labels(self, labels):
        array = np.asarray(labels)
        if array.ndim == 2 and array.shape[1] == self.num_classes + 1:  # distill's training targets
            return array.astype("float32")
        return super().encode_labels(labels)


class DistillationTrainer(Trainer):
    """A `Trainer` whose fit learns soft targets; `evaluate`, `predict`, `save` and `export` are the student's."""

    def __init__(self, model, *, temperature, alpha, **options):
        super().__init__(model, **options)
        self._distillation_task = DistillationTask(model.task, temperature, alpha)

    @property
    def task(self):
        return self._distillation_task

    def fit(self, *args, **kwargs):
        """`Trainer.fit` on `[hard label, soft targets]` rows; afterwards the model is compiled with its own task's
        loss and metrics again, so that what `save` writes is an ordinary model of that task."""
        try:
            return super().fit(*args, **kwargs)
        finally:
            core, task = self.model.core, self.model.task
            if getattr(core, "optimizer", None) is not None:
                core.compile(optimizer=core.optimizer, loss=task.loss(), weighted_metrics=task.fit_metrics())
