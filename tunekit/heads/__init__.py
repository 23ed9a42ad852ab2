"""Task heads: classification, multi-label classification, regression and token classification over a BERT encoder."""

from tunekit.heads.classification import ClassificationTask
from tunekit.heads.multilabel import MultilabelTask
from tunekit.heads.pooling import SentencePooling
from tunekit.heads.regression import RegressionTask
from tunekit.heads.task import Task
from tunekit.heads.token_classification import TokenClassificationTask

TASKS = {task.name: task for task in (ClassificationTask, MultilabelTask, RegressionTask, TokenClassificationTask)}


def task_from_config(config):
    """Rebuilds a task from `Task.get_config()`."""
    config = dict(config)
    return TASKS[config.pop("name")](**config)


__all__ = [
    "TASKS",
    "ClassificationTask",
    "MultilabelTask",
    "RegressionTask",
    "SentencePooling",
    "Task",
    "TokenClassificationTask",
    "task_from_config",
]
