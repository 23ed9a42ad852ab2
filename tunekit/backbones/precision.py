"""Which dtype policy a native encoder computes in: `load_backbone(dtype=...)`, `$TUNEKIT_DTYPE` and `"auto"`.

- `dtype=None` (default): `$TUNEKIT_DTYPE` when it is set, else the global Keras policy (float32 unless the user
  set another with `keras.config.set_dtype_policy`).
- `"float32"`, `"mixed_bfloat16"`, `"mixed_float16"`: that policy (16-bit activations and matrix products,
  float32 weights; heads, losses and optimizer state stay float32).
- `"auto"`: `"mixed_bfloat16"` where the hardware multiplies bfloat16 matrices natively, `"float32"` elsewhere:
  CPUs with AMX (`amx_bf16`) or AVX-512 bfloat16 instructions (`avx512_bf16`), read from `/proc/cpuinfo`, and
  GPUs of compute capability 8.0 or more (Ampere and later). Without such units bfloat16 is emulated and slower.

bfloat16 is not the default: over 3 seeds it trained 1.37× faster per step on the 2-core development CPU and kept
IMDB's accuracy (+0.13 points) but not SST-2's (-0.73 points, worst seed -1.72), short of the 0.3-point bar set
for a default (`benchmarks/fast_settings.py`, docs/performance.md).

`TUNEKIT_DTYPE` (any of the names above, `auto` included) sets the policy for a whole process without changing
code, e.g. `TUNEKIT_DTYPE=auto python examples/imdb_sentiment.py`.

>>> from tunekit.backbones.precision import resolve_dtype
>>> resolve_dtype("auto") in ("float32", "mixed_bfloat16")
True
"""

import os

import keras
import tensorflow as tf

DTYPE_ENV = "TUNEKIT_DTYPE"
BFLOAT16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
DTYPE_NAMES = ("float32", "mixed_bfloat16", "mixed_float16", "auto")


def validate_dtype(dtype, *, where="dtype"):
    """Refuses a `dtype` that is neither None nor one of `DTYPE_NAMES`."""
    if dtype is None:
        return
    if not isinstance(dtype, str):
        raise TypeError(f"{where} must be a dtype policy name such as 'float32' or 'mixed_bfloat16', got "
                        f"{type(dtype).__name__}.")
    if dtype not in DTYPE_NAMES:
        raise ValueError(f"{where}={dtype!r} is not a dtype tunekit knows: use one of "
                         f"{', '.join(map(repr, DTYPE_NAMES))} ('auto': bfloat16 where the hardware has bfloat16 "
                         "units, else float32).")


def requested_dtype(dtype):
    """`dtype` (checked), or when it is None the value of `$TUNEKIT_DTYPE` (checked), or None."""
    validate_dtype(dtype)
    if dtype is None:
        dtype = os.environ.get(DTYPE_ENV, "").strip() or None
        validate_dtype(dtype, where=f"${DTYPE_ENV}")
    return dtype


def resolve_dtype(dtype):
    """The policy name a native encoder is built with for a `requested_dtype`: `"auto"` becomes
    `"mixed_bfloat16"` on bfloat16 hardware (`bfloat16_hardware()`) and `"float32"` elsewhere, None the global
    Keras policy's name; policy names stay as they are."""
    if dtype == "auto":
        return "mixed_bfloat16" if bfloat16_hardware() else "float32"
    return keras.config.dtype_policy().name if dtype is None else dtype


def bfloat16_hardware():
    """What multiplies bfloat16 matrices natively here, in words ("CPU with amx_bf16", "GPU ... compute capability
    8.0"), or None when nothing does."""
    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if capability and tuple(capability) >= (8, 0):
            return f"GPU {gpu.name} of compute capability {capability[0]}.{capability[1]}"
    if tf.config.list_physical_devices("GPU"):
        return None  # training runs on the GPU, which has no bfloat16 units
    flags = cpu_flags()
    found = [flag for flag in BFLOAT16_CPU_FLAGS if flag in flags]
    return f"CPU with {found[0]}" if found else None


def cpu_flags():
    """The instruction-set flags of the first CPU in `/proc/cpuinfo` (an empty set where there is no such file)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def float32_copy(layer):
    """A copy of a built Keras layer or model with every dtype policy set to float32 and the same weights (which
    are float32 under any mixed policy): what exports compute with, however the original trained."""

    def float32_policies(config):
        if isinstance(config, dict):
            if config.get("class_name") == "DTypePolicy" and isinstance(config.get("config"), dict):
                return {**config, "config": {**config["config"], "name": "float32"}}
            return {key: float32_policies(value) for key, value in config.items()}
        if isinstance(config, list):
            return [float32_policies(value) for value in config]
        return config

    copy = keras.saving.deserialize_keras_object(float32_policies(keras.saving.serialize_keras_object(layer)))
    if not copy.built:
        copy.build()
    copy.set_weights(layer.get_weights())
    return copy
