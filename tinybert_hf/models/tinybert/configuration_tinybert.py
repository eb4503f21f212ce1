"""TinyBERT model configuration.

This module imports only `transformers` so that `save_pretrained` can ship it next to the modeling code for
`trust_remote_code` users who do not have `tinybert_hf` installed.
"""

from __future__ import annotations

from typing import Any, ClassVar

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig
from transformers.activations import ACT2FN
from transformers.utils import logging

logger = logging.get_logger(__name__)

# Configs whose fields mean the same thing as ours and whose state dicts use BERT's parameter names.
# `None` covers the published TinyBERT checkpoints, whose config.json has no `model_type`.
COMPATIBLE_MODEL_TYPES = ("tinybert", "bert", None)

# TinyBERT4 from the paper (Jiao et al., 2020): 4 layers, hidden 312, FFN 1200, 12 heads.
TINYBERT4_SHAPE = {"num_hidden_layers": 4, "hidden_size": 312, "intermediate_size": 1200, "num_attention_heads": 12}

# Fields a student inherits from its teacher: the student must read the teacher's token ids and positions.
_INHERITED_FROM_TEACHER = (
    "vocab_size",
    "max_position_embeddings",
    "type_vocab_size",
    "pad_token_id",
    "bos_token_id",  # RoBERTa-family `<s>` / `</s>`: the ids the tokenizer saved beside the student uses
    "eos_token_id",
    "layer_norm_eps",
    "hidden_act",
    "id2label",
    "label2id",
    "problem_type",
)


@strict
class TinyBertConfig(PreTrainedConfig):
    r"""
    Configuration of a TinyBERT student: BERT's fields plus what distillation and structured pruning need.

    Args:
        vocab_size (`int`, *optional*, defaults to 30522):
            Size of the token vocabulary; must equal the teacher's for distillation.
        hidden_size (`int`, *optional*, defaults to 312):
            Width of the embeddings and of every encoder layer's residual stream.
        num_hidden_layers (`int`, *optional*, defaults to 4):
            Number of encoder layers.
        num_attention_heads (`int`, *optional*, defaults to 12):
            Attention heads per layer (overridden per layer by `layer_num_attention_heads`).
        intermediate_size (`int`, *optional*, defaults to 1200):
            FFN width per layer (overridden per layer by `layer_intermediate_sizes`).
        hidden_act (`str`, *optional*, defaults to `"gelu"`):
            FFN activation, a key of `transformers.activations.ACT2FN`.
        hidden_dropout_prob (`float`, *optional*, defaults to 0.1):
            Dropout on embeddings and on every residual branch.
        attention_probs_dropout_prob (`float`, *optional*, defaults to 0.1):
            Dropout on attention probabilities.
        max_position_embeddings (`int`, *optional*, defaults to 512):
            Length of the absolute position table, the longest sequence the model reads.
        type_vocab_size (`int`, *optional*, defaults to 2):
            Number of token types (segments).
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal initializer.
        layer_norm_eps (`float`, *optional*, defaults to 1e-12):
            LayerNorm epsilon.
        pad_token_id (`int`, *optional*, defaults to 0):
            Padding token id.
        classifier_dropout (`float`, *optional*):
            Dropout before the classification heads; `hidden_dropout_prob` when unset.
        fit_size (`int`, *optional*):
            Hidden size of the teacher. When set and different from `hidden_size`, the model owns a learnable
            projection `fit_dense` (`hidden_size -> fit_size`) that maps its hidden states into the teacher's width
            for the embedding and hidden-state losses. It is used only for distillation: inference never runs it,
            and [`~TinyBertPreTrainedModel.remove_distillation_projection`] drops it before shipping.
        attention_head_size (`int`, *optional*):
            Width of one attention head. Defaults to `hidden_size // num_attention_heads`; set explicitly after
            structured pruning, when heads keep their width but the residual width or head count changed.
        layer_num_attention_heads (`list[int]`, *optional*):
            Heads of each layer when they differ between layers (after head pruning); one entry per layer.
        layer_intermediate_sizes (`list[int]`, *optional*):
            FFN width of each layer when it differs between layers (after neuron pruning); one entry per layer.
        position_embedding_type (`str`, *optional*, defaults to `"absolute"`):
            Kept so BERT configs load; TinyBERT models support only absolute positions.
        tie_word_embeddings (`bool`, *optional*, defaults to `True`):
            Tie the masked-LM decoder to the word embeddings (as BERT).
        use_cache (`bool`, *optional*, defaults to `True`), is_decoder (`bool`, *optional*, defaults to `False`),
        add_cross_attention (`bool`, *optional*, defaults to `False`), bos_token_id (`int`, *optional*),
        eos_token_id (`int` or `list[int]`, *optional*):
            BERT's fields, kept so a `BertConfig` converts without loss. A TinyBERT model is a bidirectional encoder:
            it refuses `is_decoder` and `add_cross_attention` when it is built.

    A config is built and edited as freely as a `BertConfig`: whether its fields describe a model is checked when a
    model is built from it ([`~TinyBertConfig.check_model_shapes`]), where transformers checks BERT's.

    Example:

    ```python
    >>> from transformers import BertConfig
    >>> from tinybert_hf import TinyBertConfig

    >>> teacher_config = BertConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12)
    >>> student_config = TinyBertConfig.from_teacher_config(teacher_config)  # TinyBERT4 shape
    >>> (student_config.num_hidden_layers, student_config.hidden_size, student_config.fit_size)
    (4, 312, 768)

    ```
    """

    model_type: ClassVar[str] = "tinybert"

    vocab_size: int = 30522
    hidden_size: int = 312
    num_hidden_layers: int = 4
    num_attention_heads: int = 12
    intermediate_size: int = 1200
    hidden_act: str = "gelu"
    hidden_dropout_prob: float | int = 0.1
    attention_probs_dropout_prob: float | int = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int | None = 0
    classifier_dropout: float | int | None = None
    fit_size: int | None = None
    attention_head_size: int | None = None
    layer_num_attention_heads: list[int] | None = None
    layer_intermediate_sizes: list[int] | None = None
    position_embedding_type: str = "absolute"
    tie_word_embeddings: bool = True
    # BERT's decoder and generation fields: kept so a BertConfig converts without loss (a model refuses a decoder)
    use_cache: bool = True
    is_decoder: bool = False
    add_cross_attention: bool = False
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None

    def check_model_shapes(self) -> None:
        """
        Raise a `ValueError` that says what to change when the fields cannot describe a TinyBERT model. Every
        TinyBERT model runs this when it is built, as BERT's modules check their config then; a config itself may
        hold anything while it is being edited.
        """
        if self.is_decoder or self.add_cross_attention:
            raise ValueError(
                "TinyBERT is a bidirectional encoder: `is_decoder` and `add_cross_attention` must be False. "
                "Load the encoder-only version of this checkpoint instead."
            )
        for name in (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "max_position_embeddings",
            "type_vocab_size",
        ):
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value}.")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"`{name}` must be in [0, 1), got {value}.")
        if self.hidden_act not in ACT2FN:
            raise ValueError(
                f"`hidden_act={self.hidden_act!r}` is not a known activation; use one of {sorted(ACT2FN)}."
            )
        if self.position_embedding_type != "absolute":
            raise ValueError(
                f"TinyBERT uses absolute position embeddings, got `position_embedding_type="
                f"{self.position_embedding_type!r}`; relative position variants of BERT cannot be loaded."
            )
        if self.attention_head_size is None and self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"`hidden_size` ({self.hidden_size}) is not a multiple of `num_attention_heads` "
                f"({self.num_attention_heads}); choose a head count that divides it (e.g. "
                f"{divisors_near(self.hidden_size, self.num_attention_heads)}) or set `attention_head_size`."
            )
        if self.attention_head_size is not None and self.attention_head_size < 1:
            raise ValueError(f"`attention_head_size` must be a positive integer, got {self.attention_head_size}.")
        if self.fit_size is not None and self.fit_size < 1:
            raise ValueError(
                f"`fit_size` must be the teacher's hidden size (a positive integer), got {self.fit_size}."
            )
        for name in ("layer_num_attention_heads", "layer_intermediate_sizes"):
            per_layer = getattr(self, name)
            if per_layer is None:
                continue
            if len(per_layer) != self.num_hidden_layers:
                raise ValueError(
                    f"`{name}` has {len(per_layer)} entries but the model has {self.num_hidden_layers} layers; "
                    "give one entry per layer."
                )
            if any(value < 1 for value in per_layer):
                raise ValueError(f"every entry of `{name}` must be a positive integer, got {per_layer}.")
        if self.layer_num_attention_heads is not None and self.attention_head_size is None:
            raise ValueError(
                "`layer_num_attention_heads` needs an explicit `attention_head_size`: with per-layer head counts "
                "the head width cannot be derived from `hidden_size`."
            )

    @property
    def head_size(self) -> int:
        """Width of one attention head."""
        if self.attention_head_size is not None:
            return self.attention_head_size
        return self.hidden_size // self.num_attention_heads

    def num_attention_heads_of_layer(self, layer_idx: int) -> int:
        """Attention heads of encoder layer `layer_idx`."""
        if self.layer_num_attention_heads is not None:
            return self.layer_num_attention_heads[layer_idx]
        return self.num_attention_heads

    def intermediate_size_of_layer(self, layer_idx: int) -> int:
        """FFN width of encoder layer `layer_idx`."""
        if self.layer_intermediate_sizes is not None:
            return self.layer_intermediate_sizes[layer_idx]
        return self.intermediate_size

    @property
    def has_fit_dense(self) -> bool:
        """Whether the model carries the distillation projection `hidden_size -> fit_size`."""
        return self.fit_size is not None and self.fit_size != self.hidden_size

    @classmethod
    def get_config_dict(cls, pretrained_model_name_or_path, **kwargs) -> tuple[dict[str, Any], dict[str, Any]]:
        """Read a config file and refuse a `model_type` whose weights cannot be TinyBERT weights."""
        config_dict, kwargs = super().get_config_dict(pretrained_model_name_or_path, **kwargs)
        source_type = config_dict.get("model_type")
        if source_type not in COMPATIBLE_MODEL_TYPES:
            raise ValueError(
                f"{pretrained_model_name_or_path} holds a `{source_type}` model, which TinyBERT classes cannot load: "
                f"only {[t for t in COMPATIBLE_MODEL_TYPES if t]} checkpoints (and the published TinyBERT checkpoints "
                "without a model_type) share BERT's architecture and parameter names. Load it with its own class "
                "(e.g. `AutoModel`) and use it as the teacher instead."
            )
        if source_type != cls.model_type:
            # A BERT config becomes a TinyBERT config: same fields, our model_type on save.
            config_dict = {key: value for key, value in config_dict.items() if key != "model_type"}
        return config_dict, kwargs

    @classmethod
    def from_teacher_config(
        cls,
        teacher_config: PreTrainedConfig,
        num_hidden_layers: int = TINYBERT4_SHAPE["num_hidden_layers"],
        hidden_size: int = TINYBERT4_SHAPE["hidden_size"],
        num_attention_heads: int = TINYBERT4_SHAPE["num_attention_heads"],
        intermediate_size: int = TINYBERT4_SHAPE["intermediate_size"],
        **kwargs,
    ) -> TinyBertConfig:
        r"""
        Derive a student config from a teacher config.

        The student keeps what ties it to the teacher's inputs and outputs (vocabulary, position and token-type
        tables, padding, start and end ids, activation, labels) and takes the shape it is given; `fit_size` is set
        to the teacher's hidden size so the intermediate losses can compare hidden states of different widths.

        Args:
            teacher_config ([`PreTrainedConfig`]):
                Config of the teacher, e.g. a `BertConfig` or another `TinyBertConfig`.
            num_hidden_layers (`int`, *optional*, defaults to 4):
                Student depth.
            hidden_size (`int`, *optional*, defaults to 312):
                Student width.
            num_attention_heads (`int`, *optional*, defaults to 12):
                Student heads per layer.
            intermediate_size (`int`, *optional*, defaults to 1200):
                Student FFN width.
            kwargs:
                Any other `TinyBertConfig` field, overriding what is taken from the teacher.

        Example:

        ```python
        >>> from transformers import BertConfig
        >>> from tinybert_hf import TinyBertConfig

        >>> teacher_config = BertConfig(hidden_size=384)
        >>> config = TinyBertConfig.from_teacher_config(teacher_config, num_hidden_layers=3, hidden_size=384)
        >>> config.fit_size is None  # same width: no projection needed
        True

        ```
        """
        missing = [
            name
            for name in ("vocab_size", "hidden_size", "max_position_embeddings")
            if getattr(teacher_config, name, None) is None
        ]
        if missing:
            raise ValueError(
                f"The teacher config ({type(teacher_config).__name__}) has no {missing}; a TinyBERT student needs a "
                "BERT-family encoder teacher."
            )
        inherited = {
            name: getattr(teacher_config, name) for name in _INHERITED_FROM_TEACHER if hasattr(teacher_config, name)
        }
        if not isinstance(inherited.get("hidden_act"), str) or inherited["hidden_act"] not in ACT2FN:
            inherited.pop("hidden_act", None)
        if not inherited.get("type_vocab_size"):  # a teacher without token types (DeBERTa-v3: 0): every id is type 0
            inherited["type_vocab_size"] = 1
        teacher_width = teacher_config.hidden_size
        inherited["fit_size"] = teacher_width if teacher_width != hidden_size else None
        inherited.update(
            num_hidden_layers=num_hidden_layers,
            hidden_size=hidden_size,
            num_attention_heads=num_attention_heads,
            intermediate_size=intermediate_size,
        )
        inherited.update(kwargs)
        return cls(**inherited)


def divisors_near(hidden_size: int, heads: int) -> list[int]:
    """Head counts that divide `hidden_size`, nearest to `heads` first (for error messages)."""
    divisors = [d for d in range(1, min(hidden_size, 64) + 1) if hidden_size % d == 0]
    return sorted(divisors, key=lambda d: abs(d - heads))[:3]


__all__ = ["TinyBertConfig"]
