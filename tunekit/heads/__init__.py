"""Task heads: classification, multi-label classification, regression and token classification over a BERT encoder."""

from tunekit.heads.classification import ClassificationTask
from tunekit.heads.multilabel import MultilabelTask
from tunekit.heads.pooling import SentencePooling
from tunekit.heads.regression import RegressionTask
from tunekit.heads.task import LabelIndex, Task
from tunekit.heads.token_classification import TokenClassificationTask

# Task name -> class: the built-in tasks and those given to `register_task`.
TASKS = {}


def register_task(task_class):
    """Makes a `Task` subclass known by its `name`: `attach_head(backbone, name, ...)` builds it (through
    `task_class.from_arguments`), and `load_model` / `load_artifact` rebuild it from its saved config
    (`task_class(**config)` without the name). Usable as a class decorator; returns the class.

    Registering the same class again is a no-op; another class under a taken name is refused.

    Example (tests/heads/test_new_task.py registers, trains, saves, exports and serves one):

        @register_task
        class SentimentScore(Task):
            name = "sentiment_score"
            ...
    """
    if not (isinstance(task_class, type) and issubclass(task_class, Task)):
        raise TypeError(f"register_task takes a subclass of tunekit.heads.Task, got {task_class!r}.")
    name = task_class.name
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"A task's name must be an identifier (it is saved with the model), got {name!r} on "
                         f"{task_class.__name__}.")
    known = TASKS.get(name)
    if known is not None and known is not task_class and known.__qualname__ != task_class.__qualname__:
        raise ValueError(f"A task named {name!r} is registered already ({known.__module__}.{known.__qualname__}).")
    TASKS[name] = task_class
    return task_class


def get_task_class(name):
    """The registered task class of `name`; a `ValueError` naming the known tasks and `register_task` otherwise."""
    if name not in TASKS:
        raise ValueError(
            f"Unknown task {name!r}; the tasks registered in this process are {sorted(TASKS)}. A task of your own "
            "must be registered before it is used or loaded: tunekit.heads.register_task(YourTask).")
    return TASKS[name]


def task_from_config(config):
    """Rebuilds a task from `Task.get_config()` (its registered class by name, called with the rest)."""
    config = dict(config)
    return get_task_class(config.pop("name", None))(**config)


for _task in (ClassificationTask, MultilabelTask, RegressionTask, TokenClassificationTask):
    register_task(_task)


__all__ = [
    "TASKS",
    "ClassificationTask",
    "LabelIndex",
    "MultilabelTask",
    "RegressionTask",
    "SentencePooling",
    "Task",
    "TokenClassificationTask",
    "get_task_class",
    "register_task",
    "task_from_config",
]
