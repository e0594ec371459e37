"""Generation: token sampling with a key-value cache, continuing a signal in its own units, and
continuing a recording file into a CSV and a figure (``cardiolens generate``).

Example:
    >>> from cardiolens.models import create_model
    >>> from cardiolens.generate import generate
    >>> model = create_model("gpt", n_layer=2).eval()
    >>> generate(model, [5, 6, 7, 8], steps=4, greedy=True).shape
    torch.Size([8])
"""

from cardiolens.generate.continuation import (
    ContinuationChunk,
    ContinuationStream,
    SignalContinuation,
    continue_signal,
    continue_signal_stream,
)
from cardiolens.generate.files import GeneratedFile, generate_file, write_continuation
from cardiolens.generate.sampling import generate, generate_stream, sample_next

__all__ = [
    "ContinuationChunk",
    "ContinuationStream",
    "GeneratedFile",
    "SignalContinuation",
    "continue_signal",
    "continue_signal_stream",
    "generate",
    "generate_file",
    "generate_stream",
    "sample_next",
    "write_continuation",
]
