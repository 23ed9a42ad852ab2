import pytest

from tunekit.training.optimization import create_optimizer


@pytest.mark.parametrize("learning_rate, error, match", [
    ("fast", TypeError, r"learning_rate must be a number such as 3e-5, got str 'fast'"),
    (True, TypeError, "got bool"),
    (None, TypeError, "got NoneType"),
    (-1e-5, ValueError, "must be positive"),
])
def test_learning_rate_must_be_a_positive_number(learning_rate, error, match):
    with pytest.raises(error, match=match):
        create_optimizer([], learning_rate=learning_rate, total_steps=10)
