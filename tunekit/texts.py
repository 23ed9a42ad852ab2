"""Checks of raw texts, shared by training, prediction and the artifact loader (no TensorFlow needed).

>>> validate_texts(["good", b"caf\\xc3\\xa9"])
['good', 'café']
>>> validate_texts(["good", None])
Traceback (most recent call last):
...
TypeError: texts[1] is NoneType (None), not a string. Every text must be a str (empty strings are fine); drop or fill missing values (e.g. pandas .fillna('')) first.
"""

import numpy as np


def as_list(values, what):
    """A list from a list / tuple / numpy array / pandas Series; a clear error for a bare string or a 2-D array."""
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{what} must be a sequence of strings, got a single {type(values).__name__}: wrap it in a list.")
    if hasattr(values, "to_numpy"):
        values = values.to_numpy()
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise ValueError(f"{what} must be 1-D, got an array of shape {values.shape}.")
        return values.tolist()
    try:
        return list(values)
    except TypeError:
        raise TypeError(f"{what} must be a sequence of strings, got {type(values).__name__}.") from None


def validate_texts(values, what="texts"):
    """Returns the texts as a list of `str`; a clear error for None, numbers, or bytes that are not UTF-8."""
    texts = as_list(values, what)
    checked = []
    for i, value in enumerate(texts):
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ValueError(f"{what}[{i}] is bytes that are not valid UTF-8 ({error}); decode it to str first.") from None
        elif not isinstance(value, str):
            raise TypeError(
                f"{what}[{i}] is {type(value).__name__} ({value!r}), not a string. Every text must be a str "
                "(empty strings are fine); drop or fill missing values (e.g. pandas .fillna('')) first."
            )
        else:
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as error:
                raise ValueError(
                    f"{what}[{i}] holds a character that cannot be written as UTF-8 ({error.reason} at position "
                    f"{error.start}: {value[max(error.start - 20, 0):error.start + 20]!r}), typically a lone UTF-16 "
                    "surrogate from scraped text. Clean it first, e.g. text.encode('utf-8', 'replace').decode('utf-8')."
                ) from None
        checked.append(value)
    return checked
