"""Text augmentations for small labelled sets: EDA (Wei & Zou 2019) and span cutoff, seeded and label-keeping.

An augmentation is any callable `(texts, labels, seed) -> (texts, labels)`: `tk.Trainer(..., augment=...)` calls it
on each epoch's training texts with a seed derived from the run's seed and the epoch, so a run is reproducible and
a resumed run rewrites the same texts. This module's augmentations:

- `SynonymReplacement(probability, synonyms)`: replaces words by synonyms;
- `RandomInsertion(probability, synonyms)`: inserts synonyms of words at random places;
- `RandomSwap(probability)`: swaps pairs of words;
- `RandomDeletion(probability)`: deletes each word with that probability;
- `SpanCutoff(ratio)`: removes one contiguous span of words.

Each changes about `probability` of a text's words (at least one), keeps its label, and never returns an empty
text. Synonyms come from a dict, a function, or `EmbeddingSynonyms(backbone)`: the nearest whole-word tokens in
the encoder's own word-piece embedding table (no extra data; WordNet's data cannot be installed offline: the `wn`
and `nltk` packages download it at run time). Back-translation needs translation models: pass your own function
as `augment=`, e.g. `lambda texts, labels, seed: (my_back_translate(texts, seed), labels)`.

Token classification (`texts` are lists of words, `labels` lists of tags): only `SynonymReplacement` keeps words
and tags aligned (one word for one word, same tag); the others refuse that task.

Example:

>>> from tunekit import augment
>>> swap = augment.RandomSwap(0.2)
>>> swap(["a b c d e", "one two"], [1, 0], seed=3)
(['d b c a e', 'two one'], [1, 0])
>>> replace = augment.SynonymReplacement(0.5, synonyms={"good": ["fine", "great"], "movie": ["film"]})
>>> replace(["a good movie"], [1], seed=0)[0]
['a great film']
"""

import numbers

import numpy as np


# Function words whose "synonyms" would change the meaning or the grammar; EDA leaves them alone too.
STOPWORDS = frozenset("""a an the and or but if then so of to in on at by for with from as is are was were be been
being it its this that these those i me my we our you your he him his she her they them their not no nor do does did
have has had will would can could should may might must shall there here what which who whom when where why how all
any both each few more most other some such only own same than too very just""".split())


def _check_probability(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number from 0 to 1 (a fraction of each text's words), got {value!r}.")
    return float(value)


class Augmentation:
    """Base of the word-level augmentations: `(texts, labels, seed) -> (texts, labels)`, labels unchanged.

    Subclasses implement `rewrite(words, rng) -> words` for one text's words (never all removed).
    """

    keeps_tags_aligned = False

    def __init__(self, probability=0.1):
        self.probability = _check_probability(probability, "probability")

    def count(self, words):
        """How many words of a text an operation touches: about `probability` of them, at least one."""
        return max(1, int(round(self.probability * len(words))))

    def __call__(self, texts, labels, seed):
        rng = np.random.default_rng(seed)
        if texts and not isinstance(texts[0], str):  # token classification: lists of words, lists of tags
            if not self.keeps_tags_aligned:
                raise ValueError(
                    f"{type(self).__name__} cannot keep token-classification tags aligned with the words it moves, "
                    "inserts or removes; use SynonymReplacement for token tasks, or no augmentation.")
            return [self.rewrite(list(words), rng) for words in texts], list(labels)
        rewritten = []
        for text in texts:
            words = text.split()
            rewritten.append(" ".join(self.rewrite(words, rng)) if words else text)
        return rewritten, list(labels)

    def rewrite(self, words, rng):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}({self.probability}{self._describe_source()})"

    def _describe_source(self):
        return ""


class _SynonymAugmentation(Augmentation):
    def __init__(self, probability=0.1, synonyms=None):
        super().__init__(probability)
        if synonyms is None or not (isinstance(synonyms, dict) or callable(synonyms)):
            raise TypeError(
                f"{type(self).__name__} needs synonyms: a dict word -> list of words, a function word -> list of "
                "words, or tunekit.augment.EmbeddingSynonyms(backbone).")
        self._synonyms = synonyms.get if isinstance(synonyms, dict) else synonyms
        self._source = (f"dict of {len(synonyms)} words" if isinstance(synonyms, dict)
                        else repr(synonyms) if isinstance(synonyms, EmbeddingSynonyms) else describe(synonyms))

    def _describe_source(self):
        return f", synonyms={self._source}"

    def synonyms_of(self, word):
        """Single-word synonyms of `word` (its lower-case form when the word itself has none), without itself; none
        for function words (`STOPWORDS`)."""
        if word.lower() in STOPWORDS:
            return []
        found = self._synonyms(word) or self._synonyms(word.lower()) or []
        return [s for s in found if s and " " not in s and s.lower() != word.lower()]


class SynonymReplacement(_SynonymAugmentation):
    """Replaces about `probability` of the words that have synonyms by a random synonym (EDA's SR)."""

    keeps_tags_aligned = True

    def rewrite(self, words, rng):
        candidates = [index for index, word in enumerate(words) if self.synonyms_of(word)]
        for index in rng.permutation(candidates)[: self.count(words)] if candidates else []:
            options = self.synonyms_of(words[index])
            words[index] = options[rng.integers(len(options))]
        return words


class RandomInsertion(_SynonymAugmentation):
    """Inserts a synonym of a random word at a random place, about `probability` times the word count (EDA's RI)."""

    def rewrite(self, words, rng):
        candidates = [word for word in words if self.synonyms_of(word)]
        for _ in range(self.count(words) if candidates else 0):
            options = self.synonyms_of(candidates[rng.integers(len(candidates))])
            words.insert(int(rng.integers(len(words) + 1)), options[rng.integers(len(options))])
        return words


class RandomSwap(Augmentation):
    """Swaps two random words, about `probability` times the word count (EDA's RS)."""

    def rewrite(self, words, rng):
        if len(words) < 2:
            return words
        for _ in range(self.count(words)):
            first, second = rng.choice(len(words), 2, replace=False)
            words[first], words[second] = words[second], words[first]
        return words


class RandomDeletion(Augmentation):
    """Deletes each word with `probability`; one random word stays if all would go (EDA's RD)."""

    def rewrite(self, words, rng):
        kept = [word for word, draw in zip(words, rng.random(len(words))) if draw >= self.probability]
        return kept or [words[rng.integers(len(words))]]


class SpanCutoff(Augmentation):
    """Removes one contiguous span of about `probability` of the words (span cutoff, Shen et al. 2020, on words)."""

    def rewrite(self, words, rng):
        if len(words) < 2:
            return words
        length = min(self.count(words), len(words) - 1)
        start = int(rng.integers(len(words) - length + 1))
        return words[:start] + words[start + length:]


class EmbeddingSynonyms:
    """Synonyms from the encoder's own word-piece embeddings: a word's nearest whole-word tokens by cosine.

    Args:
        backbone: a `Backbone` with a native encoder (its `word_embeddings`) and a WordPiece preprocessor (its
            `vocabulary`).
        neighbours: how many nearest tokens to offer per word.
        min_similarity: cosine below which a neighbour is not offered.

    Only words that are one whole token of the vocabulary get synonyms; the neighbours are whole-word tokens
    (no `##` pieces, no `[special]` tokens, no digits). Computed on first use per word, then cached.
    """

    def __init__(self, backbone, neighbours=5, min_similarity=0.5):
        encoder, preprocessor = backbone.encoder, backbone.preprocessor
        table = getattr(getattr(encoder, "word_embeddings", None), "embeddings", None)
        vocabulary = getattr(preprocessor, "vocabulary", None)
        if table is None or vocabulary is None:
            raise TypeError(
                "EmbeddingSynonyms needs a native encoder and a WordPiece preprocessor (the embedding table and its "
                f"vocabulary); this backbone has {type(encoder).__name__} + {type(preprocessor).__name__}. Pass a "
                "dict of synonyms instead.")
        embeddings = np.asarray(table.numpy() if hasattr(table, "numpy") else table, "float32")
        self._lower_case = bool(getattr(preprocessor, "lower_case", True))
        self._ids = {token: index for index, token in enumerate(vocabulary)}
        words = [index for index, token in enumerate(vocabulary)
                 if token.isalpha() and not token.startswith("##") and not token.startswith("[")]
        self._word_ids = np.array(words)
        vectors = embeddings[self._word_ids]
        self._vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        self._tokens = [vocabulary[index] for index in words]
        self._row = {index: row for row, index in enumerate(words)}
        self.neighbours = neighbours
        self.min_similarity = min_similarity
        self._cache = {}
        self._vocabulary_size = len(vocabulary)

    def __repr__(self):
        return (f"EmbeddingSynonyms(vocabulary of {self._vocabulary_size}, neighbours={self.neighbours}, "
                f"min_similarity={self.min_similarity})")

    def __call__(self, word):
        key = word.lower() if self._lower_case else word
        if key not in self._cache:
            row = self._row.get(self._ids.get(key))
            if row is None:
                self._cache[key] = []
            else:
                similarity = self._vectors @ self._vectors[row]
                similarity[row] = -1.0
                best = np.argsort(-similarity)[: self.neighbours]
                self._cache[key] = [self._tokens[i] for i in best if similarity[i] >= self.min_similarity]
        return self._cache[key]


def as_augmentation(augment):
    """`Trainer(augment=...)`: None, an augmentation, a callable, or a list of them -> one callable or None."""
    if augment is None:
        return None
    steps = list(augment) if isinstance(augment, (list, tuple)) else [augment]
    for step in steps:
        if not callable(step):
            raise TypeError(
                f"augment must be a tunekit.augment augmentation, a function (texts, labels, seed) -> (texts, labels), "
                f"or a list of them; got {type(step).__name__}.")
    return steps[0] if len(steps) == 1 else Compose(steps)


class Compose:
    """Several augmentations one after the other, each with its own seed drawn from the one given."""

    def __init__(self, steps):
        self.steps = list(steps)

    def __call__(self, texts, labels, seed):
        for index, step in enumerate(self.steps):
            texts, labels = step(texts, labels, seed * 1_000_003 + index)
        return texts, labels

    def __repr__(self):
        return f"Compose([{', '.join(describe(step) for step in self.steps)}])"


def describe(augmentation):
    """A description of an augmentation that is the same in every process (for run fingerprints): the repr of
    tunekit's augmentations, the qualified name of a function."""
    if isinstance(augmentation, (Augmentation, Compose)):
        return repr(augmentation)
    name = getattr(augmentation, "__qualname__", type(augmentation).__qualname__)
    return f"{getattr(augmentation, '__module__', '?')}.{name}"


def augmented(augmentation, texts, labels, seed):
    """Applies `augmentation` and checks what it returns: as many texts and labels, no empty text."""
    new_texts, new_labels = augmentation(list(texts), list(labels), seed)
    new_texts, new_labels = list(new_texts), list(new_labels)
    if len(new_texts) != len(texts) or len(new_labels) != len(labels):
        raise ValueError(
            f"The augmentation returned {len(new_texts)} texts and {len(new_labels)} labels for {len(texts)}: it must "
            "return one rewritten text and its label per input text.")
    for index, text in enumerate(new_texts):
        if isinstance(texts[index], str) and (not isinstance(text, str) or (texts[index].strip() and not text.strip())):
            raise ValueError(f"The augmentation turned text {index} ({texts[index][:40]!r}) into {text!r}: it must "
                             "return a non-empty string for each non-empty text.")
    return new_texts, new_labels


def epochs_with(augmentation, make_epochs, segments, labels):
    """Training batches whose epoch `e` holds `augmentation`'s rewrite of the texts for that epoch.

    Args:
        augmentation: a callable `(texts, labels, seed) -> (texts, labels)` (see `as_augmentation`).
        make_epochs: `(segments, labels) -> batches(epoch, seed)`, the batches of given texts (e.g.
            `tunekit.inputs.text_batches.text_epochs` bound to a preprocessor).
        segments: the texts: a list of one list of texts (two for pairs, each rewritten with its own seed), or of
            one list of word lists for token classification.
        labels: their labels (tags for token classification).

    Returns:
        `batches(epoch, seed)`. The rewrite depends only on `seed` and `epoch`, so a run is reproducible and a
        resumed one trains on the same texts as an uninterrupted one.
    """

    def batches(epoch, seed):
        epoch_seed = (int(seed) * 1_000_003 + int(epoch)) % 2**63
        new_segments, new_labels = [], labels
        for index, segment in enumerate(segments):
            new_segment, new_labels = augmented(augmentation, segment, new_labels, epoch_seed + index)
            new_segments.append(new_segment)
        if isinstance(labels, np.ndarray):
            new_labels = np.asarray(new_labels, dtype=labels.dtype)
        return make_epochs(new_segments, new_labels)(epoch, seed)

    return batches
