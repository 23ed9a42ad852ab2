"""Made-up texts and a tiny vocabulary for tests (no real corpus text is stored in the repository)."""

import numpy as np

POSITIVE = ["good", "great", "fine", "excellent", "superb", "lovely"]
NEGATIVE = ["bad", "awful", "poor", "terrible", "boring", "dull"]
FILLER = ["the", "a", "movie", "film", "plot", "actor", "was", "is", "and", "very", "quite", "it", "this"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "!", "?"] + POSITIVE + NEGATIVE + FILLER + ["##s", "##ly", "##ed"]


def sentiment_texts(count, seed=0):
    """A separable made-up sentiment task: label 1 iff the review's adjectives are positive."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(count):
        label = i % 2
        words = rng.choice(POSITIVE if label else NEGATIVE, 2)
        noun = rng.choice(["movie", "film", "plot", "actor"])
        texts.append(f"The {noun} was {rng.choice(['very', 'quite', ''])} {words[0]} and {words[1]}.")
        labels.append(label)
    return texts, np.array(labels)
