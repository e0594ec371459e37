"""Training loops and task definitions: next-token pretraining, fine-tuning tasks and their registry."""

from cardiolens.tasks.pretrain import PretrainConfig, heldout_records, pretrain_gpt
from cardiolens.tasks.suite import get_task, list_tasks

__all__ = ["PretrainConfig", "get_task", "heldout_records", "list_tasks", "pretrain_gpt"]
