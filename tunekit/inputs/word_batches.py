"""Sentences of words (and their tags) -> word-piece batches for token classification, and back to words.

Alignment: every word is tokenized on its own with the preprocessor's `tokenize` (all words of a batch flattened
into one string tensor, their sub-word dimensions merged, then regrouped by sentence), so each word maps to its
own word-pieces. A word the tokenizer turns into no piece at all (an empty string, only control characters)
becomes `[UNK]`, so that it still gets a prediction. A word's tag labels its FIRST word-piece; its other pieces,
`[CLS]`, `[SEP]` and the padding get label 0 with sample weight 0, so the loss and the accuracy ignore them, and a
word's prediction is the one at its first piece.

Chunking: a sentence longer than `seq_length - 2` word-pieces is split at word boundaries into consecutive chunks
that fit (greedily: a chunk takes the next words while they fit); a single word with more pieces than that keeps
its first `seq_length - 2`. Every chunk is trained on and predicted, and chunk predictions are read back in word
order, so there is always exactly one prediction per input word. The same TF code runs in the input pipeline and
in the exported SavedModel, which therefore tags long sentences exactly like `Trainer.predict_labels`.

Example:

>>> import tensorflow as tf
>>> from tunekit.preprocessing.wordpiece import WordPiecePreprocessor
>>> pre = WordPiecePreprocessor(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "ada", "love", "##lace"], seq_length=8)
>>> dataset, chunks = token_dataset(pre, [["Ada", "Lovelace"]], [np.array([1, 2])], batch_size=8)
>>> inputs, labels, weights = next(iter(dataset))
>>> inputs["input_word_ids"].numpy().tolist(), labels.numpy().tolist(), weights.numpy().tolist()
([[2, 5, 6, 7, 3, 0, 0, 0]], [[0, 1, 2, 0, 0, 0, 0, 0]], [[0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
"""

import numpy as np
import tensorflow as tf

from tunekit.texts import validate_texts
from tunekit.inputs.text_batches import epoch_seed, trim_to_longest

SENTENCES_PER_CALL = 256
# An unassigned code point, 120 bytes long: BERT tokenizers replace a word over 100 bytes by [UNK], and
# SentencePiece maps an unknown character to its unknown piece.
UNKNOWN_PROBE = "\u0378" * 60


def sentence_words(x, *, allow_empty=False):
    """Sentences as lists of words (the CoNLL format), or plain strings split on whitespace -> lists of `str`.

    Plain strings (all rows) are split with `tf.strings.split` (on ASCII whitespace), as the exported model
    splits them. Raises a `ValueError` naming the row of a sentence without words (unless `allow_empty`: for
    prediction, an empty sentence simply has no tags), a `TypeError` for a word that is not a string.
    """
    if isinstance(x, tf.data.Dataset):
        raise TypeError(
            "Token classification takes sentences in memory: lists of words (or plain strings) and lists of tags, "
            "e.g. from tunekit.datasets.read_conll, not a tf.data.Dataset."
        )
    if isinstance(x, (str, bytes)):
        raise TypeError("sentences must be a list of sentences, got a single string: wrap it in a list.")
    rows = list(x.to_numpy() if hasattr(x, "to_numpy") else x)
    if not rows:
        raise ValueError("The dataset is empty: pass at least one sentence.")
    if all(isinstance(row, (str, bytes)) for row in rows):
        texts = tf.constant(validate_texts(rows, "sentences"), tf.string)
        rows = [[word.decode("utf-8") for word in sentence] for sentence in tf.strings.split(texts).to_list()]
    words = []
    for i, row in enumerate(rows):
        sentence = validate_texts(row, f"sentences[{i}]")
        if not sentence and not allow_empty:
            raise ValueError(f"Sentence {i} has no words: every sentence needs at least one word to tag; drop it.")
        words.append(sentence)
    return words


def check_tags(words, tags):
    """Raises a `ValueError` naming the first sentence whose number of tags differs from its number of words."""
    if len(tags) != len(words):
        raise ValueError(f"Got {len(words)} sentences but {len(tags)} tag lists; they must match one to one.")
    for i, (sentence, sentence_tags) in enumerate(zip(words, tags)):
        if len(sentence) != len(sentence_tags):
            raise ValueError(
                f"Sentence {i} has {len(sentence)} words but {len(sentence_tags)} tags; give one tag per word."
            )


def unknown_token_id(preprocessor):
    """The id of the preprocessor's unknown token ([UNK]): the last piece of a word that no vocabulary holds."""
    return int(preprocessor.tokenize(tf.constant([UNKNOWN_PROBE])).flat_values[-1])


def word_pieces(preprocessor, words, *, unknown_id, max_pieces):
    """String words `[S, W]` (ragged) -> int32 word-pieces `[S, W, P]`: each word tokenized on its own, cut to
    its first `max_pieces` pieces, `[unknown_id]` for a word without pieces."""
    pieces = preprocessor.tokenize(words.flat_values)
    if pieces.shape.rank == 3:  # WordPiece: [words, basic tokens, pieces]
        pieces = pieces.merge_dims(1, 2)
    pieces = tf.cast(pieces, tf.int32)
    empty = tf.equal(pieces.row_lengths(), 0)
    unknown = tf.RaggedTensor.from_row_lengths(
        tf.fill([tf.reduce_sum(tf.cast(empty, tf.int32))], tf.constant(unknown_id, tf.int32)),
        tf.cast(empty, pieces.row_splits.dtype),
    )
    return words.with_flat_values(tf.concat([pieces, unknown], axis=1)[:, :max_pieces])


def chunk_starts(counts, row_splits, budget):
    """Where chunks start, greedily: True for the first word of every sentence, and for a word whose pieces
    would overflow its chunk's `budget`.

    Args:
        counts: int64 `[N]`, the word-pieces of every word (1..budget), sentence after sentence.
        row_splits: the sentences' row splits over those N words.
        budget: word-pieces per chunk.

    Only the words of sentences over the budget go through the sequential scan.
    """
    sentence = tf.ragged.row_splits_to_segment_ids(row_splits)
    first = tf.equal(tf.range(tf.size(counts, out_type=tf.int64)), tf.gather(row_splits, sentence))
    long = tf.gather(tf.math.segment_sum(counts, sentence), sentence) > budget
    long_counts = tf.boolean_mask(counts, long)

    def fill(used, word):
        count, starts_sentence = word
        return tf.where(starts_sentence | (used + count > budget), count, used + count)

    used = tf.scan(fill, (long_counts, tf.boolean_mask(first, long)), initializer=tf.constant(0, counts.dtype))
    # Words have at least one piece, so a chunk's fill equals the word's own count only where the word opens it.
    return tf.tensor_scatter_nd_update(first, tf.where(long), tf.equal(used, long_counts))


def encode_words(preprocessor, words, *, unknown_id):
    """String words `[S, W]` (ragged) -> packed chunks: (model inputs `[C, seq_length]`, first_pieces bool
    `[C, seq_length]`).

    Chunks follow sentence order (C ≥ S); read row by row, the True positions of `first_pieces` are the words in
    order, exactly one each.
    """
    seq_length = preprocessor.seq_length
    pieces = word_pieces(preprocessor, words, unknown_id=unknown_id, max_pieces=seq_length - 2)
    per_word = pieces.values
    counts = per_word.row_lengths()
    starts = chunk_starts(counts, pieces.row_splits, seq_length - 2)
    chunk_of_word = tf.cumsum(tf.cast(starts, tf.int64)) - 1
    num_chunks = tf.reduce_sum(tf.cast(starts, tf.int64))
    chunks = tf.RaggedTensor.from_value_rowids(per_word, chunk_of_word, nrows=num_chunks)
    inputs = preprocessor.pack([chunks], seq_length)
    is_first = tf.equal(tf.ragged.range(counts), 0)
    first = tf.RaggedTensor.from_value_rowids(is_first, chunk_of_word, nrows=num_chunks).merge_dims(1, 2)
    first = first.to_tensor(default_value=False, shape=[None, seq_length - 1])
    return inputs, tf.concat([tf.zeros_like(first[:, :1]), first], axis=1)  # position 0 is [CLS]


def trim_batch(inputs, *aligned):
    """`trim_to_longest` for a batch of model inputs and the `[B, T]` arrays aligned with them."""
    inputs = trim_to_longest(inputs)
    length = tf.shape(inputs["input_mask"])[1]
    return (inputs, *(values[:, :length] for values in aligned))


def tag_probabilities(preprocessor, core, words, *, unknown_id):
    """In the graph: string words `[B, W]` (ragged) -> the core's tag probabilities per word `[B, W, C]` (ragged)."""
    inputs, first_pieces = trim_batch(*encode_words(preprocessor, words, unknown_id=unknown_id))
    probabilities = core(inputs, training=False)
    return tf.RaggedTensor.from_row_lengths(tf.boolean_mask(probabilities, first_pieces), words.row_lengths())


def token_examples(preprocessor, words, tags=None):
    """Words (from `sentence_words`) and tag ids (one int array per sentence) -> the chunks as tensors
    `(model inputs, labels, weights)`, aligned and packed once, in parallel in `tf.data`; and the number of chunks.

    Labels hold the word's tag id at its first word-piece and 0 elsewhere; weights are 1 at first pieces and 0
    elsewhere. Without `tags` all labels are 0 (for prediction).
    """
    unknown_id = unknown_token_id(preprocessor)
    lengths = [len(sentence) for sentence in words]
    flat_words = tf.constant([word for sentence in words for word in sentence], tf.string)
    flat_tags = np.concatenate(tags).astype(np.int32) if tags is not None else np.zeros(sum(lengths), np.int32)

    def encode(sentences, sentence_tags):
        inputs, first_pieces = encode_words(preprocessor, sentences, unknown_id=unknown_id)
        labels = tf.scatter_nd(tf.where(first_pieces), sentence_tags.flat_values, tf.shape(first_pieces, tf.int64))
        return inputs, labels, tf.cast(first_pieces, tf.float32)

    sentences = tf.data.Dataset.from_tensor_slices((
        tf.RaggedTensor.from_row_lengths(flat_words, lengths),
        tf.RaggedTensor.from_row_lengths(flat_tags, lengths),
    ))
    parts = list(sentences.batch(SENTENCES_PER_CALL).map(encode, num_parallel_calls=tf.data.AUTOTUNE))
    examples = tf.nest.map_structure(lambda *values: tf.concat(values, axis=0), *parts)
    return examples, int(examples[1].shape[0])


def _chunk_batches(examples, batch_size, *, shuffle=False, seed=None):
    count = int(examples[1].shape[0])
    dataset = tf.data.Dataset.from_tensor_slices(examples)
    if shuffle:
        dataset = dataset.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size).map(trim_batch, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def token_dataset(preprocessor, words, tags=None, *, batch_size, shuffle=False, seed=None):
    """Words (from `sentence_words`) and tag ids -> batches of `(model inputs, labels, weights)` over the chunks
    (see `token_examples`), each cut to its longest chunk (rounded up to a multiple of 8); and the number of
    chunks."""
    examples, count = token_examples(preprocessor, words, tags)
    return _chunk_batches(examples, batch_size, shuffle=shuffle, seed=seed), count


def token_epochs(preprocessor, words, tags, *, batch_size):
    """Training batches of sentences for a whole run: returns `batches(epoch, seed)`, one epoch of shuffled
    `token_dataset` batches in an order that is a function of `seed` and `epoch` only. The words are aligned
    with their word-pieces once, for all epochs."""
    examples, _ = token_examples(preprocessor, words, tags)

    def batches(epoch, seed):
        return _chunk_batches(examples, batch_size, shuffle=True, seed=epoch_seed(seed, epoch))

    return batches


def word_probabilities(core, dataset, words):
    """Runs `core` over the (unshuffled) batches of `token_dataset` -> tag probabilities, one `[words, C]`
    array per sentence: each word's row is the prediction at its first word-piece."""
    flat = np.concatenate([core.predict_on_batch(inputs)[weights.numpy() > 0] for inputs, _, weights in dataset])
    return np.split(flat, np.cumsum([len(sentence) for sentence in words])[:-1])
