"""Lazy package attributes: a package names its public objects, and each is imported on first use.

`import tunekit` then costs milliseconds instead of loading TensorFlow; `tunekit.load_backbone` imports
`tunekit.backbones.backbone` (and TensorFlow) the first time it is looked up.

Example:

>>> import tunekit.backbones
>>> "list_backbones" in dir(tunekit.backbones)
True
>>> tunekit.backbones.list_backbones()[:2]
['albert_en_base', 'albert_en_large']
"""

import importlib


def lazy_attributes(namespace, exports, submodules=()):
    """Module-level `__getattr__` and `__dir__` for the package whose `globals()` is `namespace`.

    Args:
        namespace: the package's `globals()`; resolved names are cached there.
        exports: `{public name: module that defines it}`.
        submodules: names of subpackages/modules importable as attributes (`tunekit.peft`).

    Returns:
        `(__getattr__, __dir__)`, to assign at the package's module level.
    """
    package = namespace["__name__"]

    def __getattr__(name):
        if name in exports:
            value = getattr(importlib.import_module(exports[name]), name)
        elif name in submodules:
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    def __dir__():
        return sorted(set(namespace) | set(exports) | set(submodules))

    return __getattr__, __dir__
