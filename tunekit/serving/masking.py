"""What the server may write about request texts: nothing by default, masked texts with `--log-texts`.

By default no request text reaches a log: the access log holds counts, not texts, and a request whose prediction
fails is logged with the exception's type and stack frames only (`describe_failure`), since an exception message
may quote the input. `--log-texts` adds the texts to the access log and the messages to failure logs, passed
through `mask_text` first: e-mail addresses become `[email]`, and phone numbers, card, account and ID numbers, that is
every run of 6 or more digits (spaces, dots, dashes and parentheses between them included), become `[number]`. The
masking errs on the side of hiding: a year range written `1999-2005` is masked too. It is a safety net for
debugging logs, not anonymisation: names and addresses written in words stay as they are.

Example:

>>> mask_text("Mail jane.doe@example.com or call +44 20 7946 0958 about card 4111 1111 1111 1111.")
'Mail [email] or call [number] about card [number].'
>>> mask_text("Rated 8/10 in 2019, 120 minutes long.")
'Rated 8/10 in 2019, 120 minutes long.'
"""

import re
import traceback

# Starts only where a run of address characters starts: linear time on long texts without '@'.
_EMAIL = re.compile(r"(?<![\w.%+-])[\w.%+-]+@[\w-]+(?:\.[\w-]+)+")
# A run of digits with the separators phone and card numbers are written with (no '/', so "8/10 9/10" stays).
_DIGITS = re.compile(r"\+?\(?\d[\d ().-]*\d")
MIN_MASKED_DIGITS = 6


def _mask_digits(match):
    run = match.group(0)
    return "[number]" if sum(character.isdigit() for character in run) >= MIN_MASKED_DIGITS else run


def mask_text(text):
    """`text` with e-mail addresses replaced by `[email]`, and runs of 6+ digits (phone, card and ID numbers) by
    `[number]`."""
    return _DIGITS.sub(_mask_digits, _EMAIL.sub("[email]", text))


def describe_failure(error, log_texts):
    """A log-ready description of an exception raised while serving a request: the stack frames and the type,
    plus the message (masked by `mask_text`) only if `log_texts`, since the message may quote request texts."""
    frames = "".join(traceback.format_tb(error.__traceback__))
    if log_texts:
        return frames + mask_text("".join(traceback.format_exception_only(error)))
    return f"{frames}{type(error).__module__}.{type(error).__qualname__} (message not logged: it may quote request " \
           "texts; run with --log-texts to log it, masked)"
