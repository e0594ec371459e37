"""Generation: token sampling with a key-value cache, and continuing a signal in its own units.

Example:
    >>> from cardiolens.models import create_model
    >>> from cardiolens.generate import generate
    >>> model = create_model("gpt", n_layer=2).eval()
    >>> generate(model, [5, 6, 7, 8], steps=4, greedy=True).shape
    torch.Size([8])
"""

from cardiolens.generate.continuation import SignalContinuation, continue_signal
from cardiolens.generate.sampling import generate, sample_next

__all__ = ["SignalContinuation", "continue_signal", "generate", "sample_next"]
