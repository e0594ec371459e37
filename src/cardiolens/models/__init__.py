"""Models: a registry of presets, the GPT decoder, checkpoints, and the HeartGPT importer.

Example:
    >>> from cardiolens.models import create_model, save_checkpoint, load_checkpoint
    >>> model = create_model("heartgpt-ecg")
    >>> model.config.block_size, model.config.fs
    (500, 100.0)
"""

from cardiolens.models import cnn as _cnn  # noqa: F401  (registers the CNN presets)
from cardiolens.models import presets as _presets  # noqa: F401  (registers the presets)
from cardiolens.models.checkpoint import load_checkpoint, read_checkpoint_config, save_checkpoint
from cardiolens.models.cnn import ResNet1d, ResNet1dConfig
from cardiolens.models.gpt import GPT, GPTConfig, GPTOutput, KVCache
from cardiolens.models.heartgpt_import import convert_heartgpt, import_heartgpt
from cardiolens.models.presets import get_config
from cardiolens.models.pretrained import list_pretrained, load_model
from cardiolens.models.registry import (
    create_model,
    get_architecture,
    list_models,
    register_architecture,
    register_model,
)
from cardiolens.models.taskmodel import TaskModel, TaskModelConfig, build_task_model

__all__ = [
    "GPT",
    "GPTConfig",
    "GPTOutput",
    "KVCache",
    "ResNet1d",
    "ResNet1dConfig",
    "TaskModel",
    "TaskModelConfig",
    "build_task_model",
    "convert_heartgpt",
    "create_model",
    "get_architecture",
    "get_config",
    "import_heartgpt",
    "list_models",
    "list_pretrained",
    "load_checkpoint",
    "load_model",
    "read_checkpoint_config",
    "register_architecture",
    "register_model",
    "save_checkpoint",
]
