"""Model registry: named presets (timm ``@register_model``) and architectures (for checkpoint loading).

A *preset* is a function that builds a model from keyword overrides, registered under a name such
as ``heartgpt-ecg``. An *architecture* is a model class with a config dataclass (``GPT`` with
``GPTConfig``); checkpoints record the architecture name so that :func:`load_checkpoint` can rebuild
the model without knowing which preset it came from.

Example:
    >>> from cardiolens.models import create_model, list_models
    >>> "heartgpt-ecg" in list_models()
    True
    >>> model = create_model("heartgpt-ecg", dropout=0.0)
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from cardiolens.errors import CardiolensError

F = TypeVar("F", bound=Callable[..., nn.Module])
T = TypeVar("T", bound=type)

_PRESETS: dict[str, Callable[..., nn.Module]] = {}
_ARCHITECTURES: dict[str, type] = {}


def register_model(name_or_fn: str | F | None = None) -> Any:
    """Register a preset builder, as ``@register_model`` or ``@register_model("name")``.

    Without a name the function name is used with underscores turned into hyphens
    (``heartgpt_ecg`` -> ``heartgpt-ecg``). Registering a name twice is an error.
    """

    def decorate(fn: F, name: str | None = None) -> F:
        key = name or fn.__name__.replace("_", "-")
        if key in _PRESETS and _PRESETS[key] is not fn:
            raise CardiolensError(f"model {key!r} is already registered")
        _PRESETS[key] = fn
        return fn

    if callable(name_or_fn):
        return decorate(name_or_fn)
    return lambda fn: decorate(fn, name_or_fn)


def register_architecture(name: str) -> Callable[[T], T]:
    """Register a model class under the architecture name written into its checkpoints.

    The class must have a ``config_class`` attribute (a dataclass with ``from_dict``/``to_dict``) and
    accept an instance of it as its only constructor argument.
    """

    def decorate(cls: T) -> T:
        if name in _ARCHITECTURES and _ARCHITECTURES[name] is not cls:
            raise CardiolensError(f"architecture {name!r} is already registered")
        cls.architecture = name
        _ARCHITECTURES[name] = cls
        return cls

    return decorate


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted names of the registered presets, optionally filtered by a shell pattern (``heartgpt-*``)."""
    names = sorted(_PRESETS)
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build a registered preset, with config fields overridden by keyword.

    Args:
        name: a name from :func:`list_models`.
        **overrides: config fields to change (``dropout=0.0``, ``block_size=1000``, ...).

    Raises:
        CardiolensError: unknown name or unknown config field.
    """
    try:
        builder = _PRESETS[name]
    except KeyError:
        close = fnmatch.filter(_PRESETS, f"*{name.split('-')[0]}*") if name else []
        hint = f"; similar: {', '.join(sorted(close))}" if close else ""
        raise CardiolensError(f"unknown model {name!r}; registered: {', '.join(list_models())}{hint}") from None
    return builder(**overrides)


def get_architecture(name: str) -> type:
    """The model class registered under an architecture name (as written in checkpoints)."""
    try:
        return _ARCHITECTURES[name]
    except KeyError:
        raise CardiolensError(f"unknown architecture {name!r}; known: {', '.join(sorted(_ARCHITECTURES))}") from None
