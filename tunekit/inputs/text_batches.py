"""Inputs -> tokenized, batched `tf.data` pipelines.

Accepted texts: a list/tuple/numpy array/pandas Series of strings; for text pairs a tuple `(texts_a,
texts_b)`, a list of `(a, b)` tuples, a 2-column numpy array or DataFrame; or a `tf.data.Dataset` of
`(text, label)` / `((text_a, text_b), label)` / `text` elements (unbatched).

Tokenization runs once, in parallel, in the input pipeline (not in the trained graph); the token ids are
cached, shuffled each epoch, batched, and each batch is cut to its own longest sequence (rounded up to a
multiple of 8) so that short texts don't pay for `seq_length`.

Example:

>>> ds = text_dataset(model.preprocessor, [["good", "bad"]], labels=np.array([1, 0]), batch_size=2)
>>> ids, labels = next(iter(ds))
>>> ids["input_word_ids"].shape      # [CLS] good [SEP]: 3 tokens, padded to 8, not to seq_length
TensorShape([2, 8])
>>> labels.numpy().tolist()
[1, 0]
"""

from typing import NamedTuple, Optional

import numpy as np
import tensorflow as tf

from tunekit.texts import as_list, validate_texts

TOKENIZE_CHUNK = 256
PAD_TO_MULTIPLE = 8
GROUP_WINDOW = 32


def split_segments(x, num_segments):
    """Texts in any accepted in-memory form -> a list of `num_segments` validated lists of str."""
    if hasattr(x, "columns"):  # pandas DataFrame
        if len(x.columns) != num_segments:
            raise ValueError(
                f"A DataFrame of texts must have {num_segments} column(s) for this model, got {list(x.columns)}: "
                "select the text column(s), e.g. df['text'] or df[['text_a', 'text_b']]."
            )
        segments = [x[column] for column in x.columns]
    elif isinstance(x, np.ndarray) and x.ndim == 2:
        if x.shape[1] != num_segments:
            raise ValueError(f"A 2-D array of texts must have {num_segments} column(s), got shape {x.shape}.")
        segments = [x[:, i] for i in range(num_segments)]
    elif num_segments == 2 and isinstance(x, tuple) and len(x) == 2 and not isinstance(x[0], str):
        segments = list(x)
    elif num_segments == 2:
        rows = as_list(x, "text pairs")
        if not all(isinstance(row, (tuple, list)) and len(row) == 2 for row in rows):
            raise ValueError("This model takes text pairs: pass (texts_a, texts_b), a list of (a, b) tuples, or two columns.")
        segments = [[row[0] for row in rows], [row[1] for row in rows]]
    else:
        segments = [as_list(x, "texts")]
        if segments[0] and isinstance(segments[0][0], (tuple, list)):
            raise ValueError("Got text pairs, but the model takes single texts: use attach_head(..., text_pairs=True).")
    names = ["texts"] if num_segments == 1 else ["texts_a", "texts_b"]
    segments = [validate_texts(segment, name) for segment, name in zip(segments, names)]
    if not segments[0]:
        raise ValueError("The dataset is empty: pass at least one text.")
    if num_segments == 2 and len(segments[0]) != len(segments[1]):
        raise ValueError(f"texts_a has {len(segments[0])} texts but texts_b has {len(segments[1])}; pairs must line up.")
    return segments


def trim_to_longest(inputs, multiple=PAD_TO_MULTIPLE):
    """Cuts a padded batch to its longest sequence, rounded up to `multiple` (dynamic padding), so a short text
    costs its own length, not `seq_length` (measured on the LiteRT export, SST-2 at seq_length 64: 1.35x the
    texts/s).

    The cut is a gather rather than a slice: the LiteRT export runs this same code, and LiteRT has no kernel for a
    slice whose end is computed in the graph.

    >>> mask = tf.constant([[1, 1, 1, 0, 0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0, 0, 0, 0]])
    >>> trim_to_longest({"input_mask": mask})["input_mask"].shape
    TensorShape([2, 8])
    """
    padded = tf.shape(inputs["input_mask"])[1]
    longest = tf.reduce_max(tf.reduce_sum(tf.cast(inputs["input_mask"], tf.int32), axis=1))
    length = tf.minimum(padded, tf.maximum((longest + multiple - 1) // multiple * multiple, 1))
    return {key: tf.gather(value, tf.range(length), axis=1) for key, value in inputs.items()}


def group_by_length(examples, batch_size, seed=None):
    """Batches shuffled examples so that each batch holds texts of similar length (less padding).

    Windows of `GROUP_WINDOW` batches' worth of examples are sorted by length and cut into batches, and
    the batches are shuffled again, so every batch is still a random draw of the data apart from its length.
    The number of batches is unchanged (`ceil(examples / batch_size)`).
    """

    def sort_by_length(ids, labels):
        order = tf.argsort(tf.reduce_sum(tf.cast(ids["input_mask"], tf.int32), axis=1))
        return tf.nest.map_structure(lambda values: tf.gather(values, order), (ids, labels))

    windows = examples.batch(batch_size * GROUP_WINDOW).map(sort_by_length, num_parallel_calls=tf.data.AUTOTUNE)
    return windows.unbatch().batch(batch_size).shuffle(GROUP_WINDOW, seed=seed, reshuffle_each_iteration=True)


def _batch_and_pad(ids_and_labels, batch_size, has_labels, *, by_length=False, seed=None):
    if by_length and has_labels:
        batched = group_by_length(ids_and_labels, batch_size, seed)
    else:
        batched = ids_and_labels.batch(batch_size)
    if has_labels:
        batched = batched.map(lambda ids, labels: (trim_to_longest(ids), labels), num_parallel_calls=tf.data.AUTOTUNE)
    else:
        batched = batched.map(trim_to_longest, num_parallel_calls=tf.data.AUTOTUNE)
    return batched.prefetch(tf.data.AUTOTUNE)


def text_dataset(preprocessor, segments, labels=None, *, batch_size, shuffle=False, seed=None, by_length=False):
    """Validated in-memory texts (from `split_segments`) and encoded labels -> batches of `(token_ids, labels)`.

    Returns batches of token-id dicts only when `labels` is None. With `shuffle` and `by_length`, batches
    group texts of similar length (see `group_by_length`).
    """
    dataset, count = _text_examples(preprocessor, segments, labels)
    if shuffle:
        dataset = dataset.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    batches = _batch_and_pad(dataset, batch_size, labels is not None, by_length=shuffle and by_length, seed=seed)
    return batches.apply(tf.data.experimental.assert_cardinality(-(-count // batch_size)))


def _text_examples(preprocessor, segments, labels):
    """Token ids (and labels) of every text, tokenized in parallel on first use and cached; and their count."""
    count = len(segments[0])
    texts = tf.data.Dataset.from_tensor_slices(tuple(tf.constant(segment, tf.string) for segment in segments))
    ids = texts.batch(TOKENIZE_CHUNK).map(
        lambda *batch: preprocessor.encode(list(batch)), num_parallel_calls=tf.data.AUTOTUNE
    ).unbatch()
    dataset = ids if labels is None else tf.data.Dataset.zip((ids, tf.data.Dataset.from_tensor_slices(labels)))
    return dataset.apply(tf.data.experimental.assert_cardinality(count)).cache(), count


def epoch_seed(seed, epoch):
    """The shuffle seed of one epoch: a function of the run's `seed` and the `epoch` only, so that a run resumed
    from a backup sees exactly the order the interrupted run saw."""
    return int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1)[0] >> 1)


def shuffled_epochs(examples, count, *, batch_size, by_length=False):
    """Training batches of cached `(token ids, label)` examples for a whole run: returns `batches(epoch, seed)`,
    one epoch's padded batches in an order that is a function of `seed` and `epoch` only (see `epoch_seed`), so a
    run resumed from a backup sees exactly the order the interrupted run saw."""

    def batches(epoch, seed):
        order = epoch_seed(seed, epoch)
        shuffled = examples.shuffle(count, seed=order, reshuffle_each_iteration=False)
        batched = _batch_and_pad(shuffled, batch_size, True, by_length=by_length, seed=order)
        return batched.apply(tf.data.experimental.assert_cardinality(-(-count // batch_size)))

    return batches


def text_epochs(preprocessor, segments, labels, *, batch_size, by_length=False):
    """Training batches of in-memory texts for a whole run (`shuffled_epochs`); texts are tokenized once, on the
    first epoch, for all epochs.

    Example:

    >>> batches = text_epochs(backbone.preprocessor, [texts], labels, batch_size=4)
    >>> first_epoch = list(batches(0, seed=1))
    >>> len(first_epoch), first_epoch[0][0]["input_word_ids"].shape
    (2, TensorShape([4, 16]))
    >>> order = [y.numpy().tolist() for _, y in first_epoch]
    >>> [y.numpy().tolist() for _, y in batches(0, seed=1)] == order   # the same epoch and seed: the same order
    True
    """
    examples, count = _text_examples(preprocessor, segments, labels)
    return shuffled_epochs(examples, count, batch_size=batch_size, by_length=by_length)


def _has_labels(spec, num_segments):
    if num_segments == 1:
        return isinstance(spec, tuple)
    return isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], tuple)


def _count_element(totals, element):
    """`reduce` step: (elements, characters) so far, for elements of `_utf8_checked` (summing the characters makes
    the UTF-8 check run)."""
    return totals[0] + 1, totals[1] + tf.cast(element[1], tf.int64)


# The most elements the count pass reads from a dataset of unknown size (a filter, a generator) before deciding that
# it may never end: more is refused with a message to bound it with .take(n).
MAX_DATASET_ELEMENTS = 10_000_000


class FirstRead(NamedTuple):
    """What `dataset_size_and_labels` read of a user's dataset: its number of elements, its labels (numpy, label
    names as `str`; None without labels) and a fingerprint of every (texts, label) element (None without labels),
    which a second read must match in any order (`_dataset_examples`)."""

    count: int
    labels: Optional[np.ndarray]
    elements: Optional[np.ndarray]


def dataset_size_and_labels(dataset, num_segments):
    """The `FirstRead` of a user's unbatched dataset: its size, labels and element fingerprints, read once.

    The labels come back so that the caller can check them as strictly as in-memory labels (fractional or
    out-of-range classes, NaN targets) before training starts. Label names arrive as `str`.

    Raises:
        ValueError: the dataset repeats forever, so an epoch would never end, or its size is unknown and it yields
            more than `MAX_DATASET_ELEMENTS` elements (a `repeat()` hidden behind a filter, an endless generator).
    """
    cardinality = int(dataset.cardinality())
    if cardinality == tf.data.INFINITE_CARDINALITY:
        raise ValueError(
            "The tf.data.Dataset repeats forever (infinite cardinality), so an epoch never ends. Remove the "
            ".repeat() (the Trainer runs the epochs), or take a finite part: dataset.take(number_of_examples)."
        )
    if cardinality < 0:  # unknown: count at most one element more than the limit
        dataset = dataset.take(MAX_DATASET_ELEMENTS + 1)
    has_labels = _has_labels(dataset.element_spec, num_segments)
    checked = dataset.map(lambda *element: _utf8_checked(element, has_labels))
    try:
        if not has_labels:
            count, _ = checked.reduce((tf.constant(0, tf.int64), tf.constant(0, tf.int64)), _count_element)
            return FirstRead(_bounded(int(count)), None, None)
        batches = [(labels.numpy(), elements.numpy()) for labels, _, elements in checked.batch(4096)]
    except tf.errors.InvalidArgumentError as error:
        if "UnicodeDecode" not in str(error):  # another failure of the user's pipeline: theirs to see
            raise
        raise ValueError("A text of the tf.data.Dataset is not valid UTF-8 (bytes in another encoding, e.g. Latin-1); "
                         "decode the source files as UTF-8 or convert them first (iconv -f latin1 -t utf-8).") from None
    labels = np.concatenate([labels for labels, _ in batches]) if batches else np.zeros([0])
    elements = np.concatenate([elements for _, elements in batches]) if batches else np.zeros([0], np.int64)
    _bounded(len(labels))
    if labels.dtype.kind in "OS":
        labels = np.vectorize(lambda value: value.decode("utf-8", "replace"), otypes=[object])(labels)
    return FirstRead(len(labels), labels, elements)


def _utf8_checked(element, has_labels):
    """(the element's label, or 0 without labels; how many characters its texts decode to as strict UTF-8; its
    `_element_fingerprint`, or 0): reading it fails on invalid bytes. The character count is returned, not
    dropped, so that the decoding is not pruned."""
    texts = element[0] if has_labels else element
    characters = tf.add_n([tf.size(tf.strings.unicode_decode(text, "UTF-8", errors="strict"))
                           for text in tf.nest.flatten(texts)])
    if not has_labels:
        return tf.constant(0), characters, tf.constant(0, tf.int64)
    return element[1], characters, _element_fingerprint(tf.nest.flatten(texts), element[1])


def _element_fingerprint(texts, label):
    """A 62-bit hash of the texts and the label of one element, or of a batch of them (texts of shape [n],
    labels of shape [n] or [n, k])."""
    if label.dtype != tf.string:
        label = tf.strings.as_string(label)
    if label.shape.rank > texts[0].shape.rank:  # multi-hot labels
        label = tf.strings.reduce_join(label, axis=-1, separator=",")
    return tf.strings.to_hash_bucket_fast(tf.strings.join([*texts, label], separator="\x1f"), 2**62)


def _bounded(count):
    if count > MAX_DATASET_ELEMENTS:
        raise ValueError(
            f"The tf.data.Dataset has no known size and yields more than {MAX_DATASET_ELEMENTS:,} elements: it may "
            "never end (a repeat() before a filter, an endless generator), so an epoch would not either. Bound it: "
            "dataset.take(number_of_examples).")
    return count


def check_dataset_elements(dataset, num_segments):
    """Checks that a user's dataset yields unbatched texts (`num_segments` strings) or `(texts, label)` elements,
    and at least one -> whether it has labels. Raises a `TypeError` (wrong form) or `ValueError` (empty)."""
    spec = dataset.element_spec
    has_labels = _has_labels(spec, num_segments)
    text_spec = spec[0] if has_labels else spec
    text_specs = text_spec if isinstance(text_spec, tuple) else (text_spec,)
    if len(text_specs) != num_segments or not all(
        isinstance(s, tf.TensorSpec) and s.dtype == tf.string and s.shape.rank == 0 for s in text_specs
    ) or (has_labels and len(spec) != 2):
        shape = "(text, label)" if num_segments == 1 else "((text_a, text_b), label)"
        raise TypeError(
            f"A tf.data.Dataset for this model must yield unbatched {shape} elements (or texts alone), got "
            f"element_spec {spec}. Call .unbatch() on a batched dataset; map other types to strings first."
        )
    if not any(True for _ in dataset.take(1)):
        raise ValueError("The dataset is empty: it yields no elements.")
    return has_labels


def _dataset_examples(preprocessor, dataset, num_segments, encode_label, first_read=None):
    """A user's unbatched dataset -> (its `(token ids, label)` or token-id examples, tokenized in parallel and
    cached; whether it has labels). Raises a `TypeError` for elements of the wrong form.

    With the `FirstRead` of a labelled dataset (whose labels were checked), the examples are read now, once, and
    must be the same (texts, label) elements, in any order (a dataset may shuffle itself): a dataset whose labels
    change between two reads (a generator drawing them at random, a file rewritten meanwhile) is refused with a
    `ValueError` before any work, instead of training on labels that were never checked.
    """
    has_labels = check_dataset_elements(dataset, num_segments)
    chunks = dataset.batch(TOKENIZE_CHUNK)
    if not has_labels:
        examples = chunks.map(lambda *texts: preprocessor.encode(list(texts)), num_parallel_calls=tf.data.AUTOTUNE)
        return examples.unbatch().cache(), False

    def to_ids(texts, labels):
        texts = list(texts) if isinstance(texts, tuple) else [texts]
        encoded = labels if encode_label is None else encode_label(labels)
        return preprocessor.encode(texts), encoded, _element_fingerprint(texts, labels)

    examples = chunks.map(to_ids, num_parallel_calls=tf.data.AUTOTUNE).unbatch().cache()
    if first_read is not None:
        _read_again(examples, first_read)
    return examples.map(lambda ids, label, _: (ids, label)), True


def _read_again(examples, first_read):
    """Reads the cached `examples` through once (filling the cache that every epoch reads) and checks that they
    are the elements of the `first_read`."""
    try:
        elements = [fingerprints.numpy() for _, _, fingerprints in examples.batch(4096)]
    except tf.errors.InvalidArgumentError as error:
        if "unknown label" not in str(error):  # another failure of the user's pipeline: theirs to see
            raise
        raise ValueError(_changed_message("a label read again is not one of the model's labels")) from None
    elements = np.concatenate(elements) if elements else np.zeros([0], np.int64)
    if len(elements) != first_read.count:
        raise ValueError(_changed_message(f"it yielded {first_read.count} elements when counted and "
                                          f"{len(elements)} when read again"))
    before, before_counts = np.unique(first_read.elements, return_counts=True)
    after, after_counts = np.unique(elements, return_counts=True)
    _, in_before, in_after = np.intersect1d(before, after, assume_unique=True, return_indices=True)
    differ = first_read.count - int(np.minimum(before_counts[in_before], after_counts[in_after]).sum())
    if differ:
        raise ValueError(_changed_message(f"{differ} of its {first_read.count} (text, label) elements are not "
                                          "those read before"))


def _changed_message(what):
    return (f"The tf.data.Dataset changed between two reads: {what}. tunekit reads a dataset twice (once to count "
            "and check its labels, once to tokenize it for all epochs), so both reads must give the same elements, "
            "in any order: draw any random labels with a fixed seed, or materialise the dataset first (save it to "
            "files and read them back, or build it from lists).")


def tf_dataset(preprocessor, dataset, num_segments, *, batch_size, shuffle=False, seed=None, encode_label=None,
               by_length=False, first_read=None):
    """A `tf.data.Dataset` of unbatched `(text, label)`, `((a, b), label)`, texts or `(a, b)` -> batches like
    `text_dataset`. `encode_label` maps a label tensor to its numeric form (e.g. label names -> class ids); the
    dataset must give again the elements of its `first_read` (`_dataset_examples`).
    """
    examples, has_labels = _dataset_examples(preprocessor, dataset, num_segments, encode_label, first_read)
    if shuffle:
        examples = examples.shuffle(10_000, seed=seed, reshuffle_each_iteration=True)
    return _batch_and_pad(examples, batch_size, has_labels, by_length=shuffle and by_length, seed=seed)


def dataset_epochs(preprocessor, dataset, num_segments, first_read, *, batch_size, encode_label=None,
                   by_length=False):
    """Training batches of a user's labelled dataset for a whole run (`shuffled_epochs`). The dataset is read
    again now, must give the elements of its `first_read` (from `dataset_size_and_labels`, whose labels were
    checked), and is tokenized once for all epochs."""
    examples, _ = _dataset_examples(preprocessor, dataset, num_segments, encode_label, first_read)
    return shuffled_epochs(examples, first_read.count, batch_size=batch_size, by_length=by_length)
