"""Training loops and task definitions: next-token pretraining (and, later, fine-tuning tasks)."""

from cardiolens.tasks.pretrain import PretrainConfig, heldout_records, pretrain_gpt

__all__ = ["PretrainConfig", "heldout_records", "pretrain_gpt"]
