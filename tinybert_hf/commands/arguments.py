"""The options of the subcommands that are not the recipe's (`prune`, `sparsify`, `push`, `evaluate`, `card`,
`export`); the recipe's groups are in [`~tinybert_hf.recipe.arguments`]. Imports nothing heavy: `--help` prints from
it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..recipe.arguments import check_at_least, check_choices


@dataclass
class PruneArguments:
    """What `tinybert-hf prune` removes; data, calibration and training options are the recipe's."""

    model: str = field(metadata={"help": "Saved student (or any TinyBERT/BERT task model) to prune."})
    head_ratio: float = field(default=0.0, metadata={"help": "Share of attention heads to remove, in [0, 1)."})
    ffn_ratio: float = field(default=0.0, metadata={"help": "Share of FFN neurons to remove, in [0, 1)."})
    allocation: Literal["per_layer", "global"] = field(
        default="per_layer", metadata={"help": "'per_layer' (same share everywhere) or 'global' (layers differ)."}
    )
    target_layers: int | None = field(default=None, metadata={"help": "Target depth (instead of ratios)."})
    target_hidden_size: int | None = field(default=None, metadata={"help": "Target width (instead of ratios)."})
    target_heads: int | None = field(default=None, metadata={"help": "Target heads per layer (instead of ratios)."})
    target_intermediate_size: int | None = field(default=None, metadata={"help": "Target FFN width."})
    recovery_epochs: float = field(
        default=0.0, metadata={"help": "Epochs of recovery distillation after pruning (0: none)."}
    )

    def __post_init__(self):
        check_choices(self)
        for name in ("head_ratio", "ffn_ratio"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"`{name}` must be in [0, 1) (the share removed), got {getattr(self, name):g}.")
        check_at_least(self, 1, "target_layers", "target_hidden_size", "target_heads", "target_intermediate_size")
        check_at_least(self, 0, "recovery_epochs")
        targets = ("target_layers", "target_hidden_size", "target_heads", "target_intermediate_size")
        if not (self.head_ratio or self.ffn_ratio or any(getattr(self, name) is not None for name in targets)):
            raise ValueError(
                "Nothing to prune: give `--head_ratio` / `--ffn_ratio` (shares to remove) or a target shape "
                "(`--target_layers`, `--target_hidden_size`, `--target_heads`, `--target_intermediate_size`)."
            )


@dataclass
class SparsifyArguments:
    """What `tinybert-hf sparsify` zeroes; data options are the recipe's (for the dev/test metrics)."""

    model: str = field(metadata={"help": "Saved student to sparsify (read only)."})
    sparsity: float = field(default=0.5, metadata={"help": "Share of the attention/FFN weights set to zero."})
    scope: Literal["global", "per_layer"] = field(
        default="global", metadata={"help": "'global' (one magnitude threshold) or 'per_layer' (same share each)."}
    )

    def __post_init__(self):
        check_choices(self)


@dataclass
class PushArguments:
    model: str = field(metadata={"help": "Saved student directory to push (read only)."})
    repo_id: str = field(metadata={"help": "Hub repository, e.g. 'my-org/tinybert4-sst2' (created if missing)."})
    private: bool = field(default=False, metadata={"help": "Create the repository as private."})
    revision: str | None = field(default=None, metadata={"help": "Branch to commit to (default: main)."})
    commit_message: str | None = field(default=None, metadata={"help": "Commit message."})
    create_pr: bool = field(default=False, metadata={"help": "Open a pull request instead of committing to main."})


@dataclass
class EvaluateArguments:
    model: str = field(metadata={"help": "Saved model directory or Hub id to evaluate."})


@dataclass
class CardArguments:
    model: str = field(metadata={"help": "Student directory written by the recipe (holds tinybert_results.json)."})
    repo_id: str | None = field(default=None, metadata={"help": "Hub repository named in the loading examples."})


@dataclass
class ExportArguments:
    model: str = field(metadata={"help": "Saved student directory to export (read only)."})
    output_dir: str | None = field(
        default=None, metadata={"help": "Where the ONNX model goes (default: <model>-onnx)."}
    )
    opset_version: int = field(default=18, metadata={"help": "ONNX opset of the graph."})
