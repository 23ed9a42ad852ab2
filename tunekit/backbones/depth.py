"""Which layer of an encoder each of its variables belongs to, counted from the input up.

Depth 0 is the embeddings, 1..L the transformer blocks (bottom to top) and L + 1 the pooler. Layer-wise
learning-rate decay (`tunekit.training.optimization`) scales each variable's learning rate by its depth, and
freezing a TF Hub encoder (`tunekit.peft.freezing`) freezes the variables below a depth.

Blocks are found by variable name, the same way for every encoder tunekit runs: native `BertEncoder`s and TF Hub
encoders written by tunekit name them `transformer_block_N`, published TF Hub BERT encoders (TF Model Garden)
`transformer/layer_N`, LoRA factors `lora_N_...`. Keras turns `/` into `.` in the names of adopted TF Hub
variables, so both separators are accepted.

Example:

>>> block_index("encoder/transformer_block_3/query/kernel"), block_index("transformer.layer_11.attention.kernel")
(3, 11)
>>> [depth("encoder/word_embeddings/embeddings", 6), depth("encoder/transformer_block_0/query/kernel", 6),
...  depth("encoder/pooler/kernel", 6)]
[0, 1, 7]
"""

import re

_BLOCK_NAME = re.compile(r"(?:^|[./])(?:transformer[./]layer_|transformer_block_|lora_)(\d+)[._/]")


def block_index(name):
    """The transformer block (0-based) a variable name belongs to, or None (embeddings, pooler, head)."""
    match = _BLOCK_NAME.search(name)
    return int(match.group(1)) if match else None


def depth(name, num_layers):
    """The depth of an encoder variable: 0 (embeddings), 1..`num_layers` (its block + 1), `num_layers` + 1
    (pooler)."""
    index = block_index(name)
    if index is not None:
        return index + 1
    return num_layers + 1 if "pooler" in name else 0


def variable_depths(encoder, variables):
    """The depth of each of `variables` (Keras variables of `encoder`), in order.

    Raises:
        ValueError: the encoder's variables are not named per block (e.g. ALBERT, whose layers share one block's
            weights), so their depth is unknown.
    """
    found = {block_index(variable.path) for variable in encoder.variables} - {None}
    if found != set(range(encoder.num_layers)):
        raise ValueError(
            f"The variables of this {type(encoder).__name__} are not named per transformer block "
            "('transformer_block_N/...' or 'transformer/layer_N/...' as in published BERT encoders; found blocks "
            f"{sorted(found)} of {encoder.num_layers}), so tunekit cannot tell its layers apart. Load the model as a "
            "Hugging Face checkpoint folder (config.json, vocab.txt, model.safetensors)."
        )
    return [depth(variable.path, encoder.num_layers) for variable in variables]
