"""PyTorch TinyBERT: a BERT encoder that exposes what knowledge distillation needs.

Parameter names follow `transformers`' BERT (`bert.embeddings`, `bert.encoder.layer.N.attention.self.query`,
`LayerNorm`, `classifier`, `cls.predictions`) so BERT state dicts and the published TinyBERT checkpoints load by
key. Beyond BERT, every class can return

- `attention_scores`: each layer's pre-softmax, pre-mask attention scores `q.k / sqrt(d)`, shape
  `(batch, heads, seq, seq)`, which TinyBERT's attention loss compares (the mask is applied by the loss);
- `fit_hidden_states`: the hidden states projected to the teacher's width by `fit_dense` (`config.fit_size`).

Layers may differ in head count and FFN width (`config.layer_num_attention_heads`, `config.layer_intermediate_sizes`),
which is how structurally pruned students are described.

This file imports only torch, transformers and `.configuration_tinybert`: `save_pretrained` copies it next to the
weights so that `trust_remote_code=True` loads a student where `tinybert_hf` is not installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutputWithPooling,
    MaskedLMOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import logging

from .configuration_tinybert import TinyBertConfig

logger = logging.get_logger(__name__)

# Key renaming for the published TinyBERT checkpoints, which keep `fit_dense` at the top of the task and
# pre-training models, while here it belongs to the encoder (`bert.fit_dense`).
_PUBLISHED_TINYBERT_KEY_MAPPING = {r"^fit_dense\.": "bert.fit_dense."}

# Written into every saved config, so each Auto class finds its TinyBERT class in the shipped code
# (`trust_remote_code=True`) whichever class saved the checkpoint.
TINYBERT_AUTO_MAP = {
    "AutoConfig": "configuration_tinybert.TinyBertConfig",
    "AutoModel": "modeling_tinybert.TinyBertModel",
    "AutoModelForMaskedLM": "modeling_tinybert.TinyBertForMaskedLM",
    "AutoModelForSequenceClassification": "modeling_tinybert.TinyBertForSequenceClassification",
    "AutoModelForTokenClassification": "modeling_tinybert.TinyBertForTokenClassification",
}
# the files `trust_remote_code` imports the auto_map's classes from (shipped next to the weights)
TINYBERT_CODE_FILES = tuple(sorted({f"{reference.split('.')[0]}.py" for reference in TINYBERT_AUTO_MAP.values()}))


@dataclass
class TinyBertModelOutput(BaseModelOutputWithPooling):
    r"""
    Output of [`TinyBertModel`].

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, sequence_length, hidden_size)`):
            Output of the last layer.
        pooler_output (`torch.FloatTensor` of shape `(batch_size, hidden_size)`, *optional*):
            First token's last hidden state through the pooler's dense layer and tanh.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*):
            `num_hidden_layers + 1` tensors `(batch_size, sequence_length, hidden_size)`, embeddings first.
        attentions (`tuple(torch.FloatTensor)`, *optional*):
            Per layer, attention probabilities `(batch_size, num_heads, sequence_length, sequence_length)`.
        attention_scores (`tuple(torch.FloatTensor)`, *optional*):
            Per layer, pre-softmax scores `q.k / sqrt(head_size)` before the padding mask is added,
            `(batch_size, num_heads, sequence_length, sequence_length)`.
        fit_hidden_states (`tuple(torch.FloatTensor)`, *optional*):
            `hidden_states` projected by `fit_dense` to `(batch_size, sequence_length, fit_size)`; the hidden states
            themselves when the model has no projection.
    """

    attention_scores: tuple[torch.FloatTensor, ...] | None = None
    fit_hidden_states: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class TinyBertSequenceClassifierOutput(SequenceClassifierOutput):
    r"""[`SequenceClassifierOutput`] plus `attention_scores` and `fit_hidden_states` (see [`TinyBertModelOutput`])."""

    attention_scores: tuple[torch.FloatTensor, ...] | None = None
    fit_hidden_states: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class TinyBertTokenClassifierOutput(TokenClassifierOutput):
    r"""[`TokenClassifierOutput`] plus `attention_scores` and `fit_hidden_states` (see [`TinyBertModelOutput`])."""

    attention_scores: tuple[torch.FloatTensor, ...] | None = None
    fit_hidden_states: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class TinyBertMaskedLMOutput(MaskedLMOutput):
    r"""[`MaskedLMOutput`] plus `attention_scores` and `fit_hidden_states` (see [`TinyBertModelOutput`])."""

    attention_scores: tuple[torch.FloatTensor, ...] | None = None
    fit_hidden_states: tuple[torch.FloatTensor, ...] | None = None


class TinyBertEmbeddings(nn.Module):
    """Word, position and token-type embeddings, summed, then LayerNorm and dropout (as BERT)."""

    def __init__(self, config: TinyBertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        # (1, max_positions); not saved, rebuilt in _init_weights
        self.position_ids = nn.Buffer(torch.arange(config.max_position_embeddings).expand((1, -1)), persistent=False)
        self.token_type_ids = nn.Buffer(torch.zeros(self.position_ids.size(), dtype=torch.long), persistent=False)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
    ) -> torch.Tensor:
        input_shape = input_ids.shape if input_ids is not None else inputs_embeds.shape[:-1]
        seq_length = input_shape[1]
        if position_ids is None:
            position_ids = self.position_ids[:, :seq_length]
        if token_type_ids is None:
            token_type_ids = self.token_type_ids[:, :seq_length].expand(input_shape)
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        embeddings = (
            inputs_embeds + self.token_type_embeddings(token_type_ids) + self.position_embeddings(position_ids)
        )
        return self.dropout(self.LayerNorm(embeddings))


def attention_with_scores(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    training: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """
    Explicit attention. Inputs `(batch, heads, seq, head_size)`, `attention_mask` additive `(batch, 1, 1, seq)`.
    Returns the context `(batch, seq, heads, head_size)`, the probabilities and the pre-mask scores
    `(batch, heads, seq, seq)`.
    """
    scores = torch.matmul(query, key.transpose(-1, -2)) * scaling
    probs = nn.functional.softmax(scores if attention_mask is None else scores + attention_mask, dim=-1)
    context = torch.matmul(nn.functional.dropout(probs, p=dropout, training=training), value)
    return context.transpose(1, 2).contiguous(), probs, scores


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """[`attention_with_scores`] with the AttentionInterface signature and return value."""
    context, probs, _ = attention_with_scores(query, key, value, attention_mask, scaling, dropout, module.training)
    return context, probs


class TinyBertSelfAttention(nn.Module):
    """Multi-head self-attention whose head count is read per layer, so pruned layers can differ."""

    def __init__(self, config: TinyBertConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.num_attention_heads = config.num_attention_heads_of_layer(layer_idx)
        self.attention_head_size = config.head_size
        self.all_head_size = self.num_attention_heads * self.attention_head_size
        self.scaling = self.attention_head_size**-0.5
        self.is_causal = False  # read by transformers' SDPA and flash attention functions

        self.query = nn.Linear(config.hidden_size, self.all_head_size)
        self.key = nn.Linear(config.hidden_size, self.all_head_size)
        self.value = nn.Linear(config.hidden_size, self.all_head_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_attention_scores: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        batch_size, seq_length = hidden_states.shape[:2]
        head_shape = (batch_size, seq_length, self.num_attention_heads, self.attention_head_size)
        # (batch, heads, seq, head_size)
        query = self.query(hidden_states).view(head_shape).transpose(1, 2)
        key = self.key(hidden_states).view(head_shape).transpose(1, 2)
        value = self.value(hidden_states).view(head_shape).transpose(1, 2)
        dropout = self.dropout.p if self.training else 0.0

        if output_attentions or output_attention_scores:
            # The only path that can hand back scores; `attention_mask` is then additive (see TinyBertModel).
            context, probs, scores = attention_with_scores(
                query, key, value, attention_mask, self.scaling, dropout, self.training
            )
            return (
                context.reshape(batch_size, seq_length, self.all_head_size),
                probs if output_attentions else None,
                scores if output_attention_scores else None,
            )

        # Any implementation registered with transformers' AttentionInterface (sdpa, flash, flex, a user's own).
        attention_interface = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        context, _ = attention_interface(
            self, query, key, value, attention_mask, dropout=dropout, scaling=self.scaling
        )  # context: (batch, seq, heads, head_size)
        return context.reshape(batch_size, seq_length, self.all_head_size), None, None


class TinyBertSelfOutput(nn.Module):
    """Projection of the concatenated heads back to the residual width, then residual LayerNorm."""

    def __init__(self, config: TinyBertConfig, layer_idx: int):
        super().__init__()
        all_head_size = config.num_attention_heads_of_layer(layer_idx) * config.head_size
        self.dense = nn.Linear(all_head_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class TinyBertAttention(nn.Module):
    def __init__(self, config: TinyBertConfig, layer_idx: int):
        super().__init__()
        self.self = TinyBertSelfAttention(config, layer_idx)
        self.output = TinyBertSelfOutput(config, layer_idx)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_attention_scores: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        context, probs, scores = self.self(hidden_states, attention_mask, output_attentions, output_attention_scores)
        return self.output(context, hidden_states), probs, scores


class TinyBertIntermediate(nn.Module):
    def __init__(self, config: TinyBertConfig, layer_idx: int):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size_of_layer(layer_idx))
        self.intermediate_act_fn = ACT2FN[config.hidden_act]

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.intermediate_act_fn(self.dense(hidden_states))


class TinyBertOutput(nn.Module):
    def __init__(self, config: TinyBertConfig, layer_idx: int):
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size_of_layer(layer_idx), config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class TinyBertLayer(GradientCheckpointingLayer):
    """One post-LayerNorm transformer block: self-attention, then the feed-forward network."""

    def __init__(self, config: TinyBertConfig, layer_idx: int):
        super().__init__()
        self.attention = TinyBertAttention(config, layer_idx)
        self.intermediate = TinyBertIntermediate(config, layer_idx)
        self.output = TinyBertOutput(config, layer_idx)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_attention_scores: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        attention_output, probs, scores = self.attention(
            hidden_states, attention_mask, output_attentions, output_attention_scores
        )
        layer_output = self.output(self.intermediate(attention_output), attention_output)
        return layer_output, probs, scores


class TinyBertEncoder(nn.Module):
    def __init__(self, config: TinyBertConfig):
        super().__init__()
        self.config = config
        self.layer = nn.ModuleList([TinyBertLayer(config, layer_idx=i) for i in range(config.num_hidden_layers)])

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        output_attention_scores: bool = False,
    ) -> tuple[torch.Tensor, tuple | None, tuple | None, tuple | None]:
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        all_attentions = () if output_attentions else None
        all_scores = () if output_attention_scores else None
        for layer_module in self.layer:
            # hidden_states stays positional: gradient checkpointing only propagates gradients through *args
            hidden_states, probs, scores = layer_module(
                hidden_states,
                attention_mask,
                output_attentions=output_attentions,
                output_attention_scores=output_attention_scores,
            )
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            if output_attentions:
                all_attentions += (probs,)
            if output_attention_scores:
                all_scores += (scores,)
        return hidden_states, all_hidden_states, all_attentions, all_scores


class TinyBertPooler(nn.Module):
    """First token's hidden state through a dense layer and tanh (as BERT)."""

    def __init__(self, config: TinyBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(hidden_states[:, 0]))


class TinyBertPredictionHeadTransform(nn.Module):
    def __init__(self, config: TinyBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.transform_act_fn = ACT2FN[config.hidden_act]
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.transform_act_fn(self.dense(hidden_states)))


class TinyBertLMPredictionHead(nn.Module):
    def __init__(self, config: TinyBertConfig):
        super().__init__()
        self.transform = TinyBertPredictionHeadTransform(config)
        # decoder.weight is tied to the word embeddings; the output-only bias is tied to decoder.bias
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=True)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(hidden_states))


class TinyBertOnlyMLMHead(nn.Module):
    def __init__(self, config: TinyBertConfig):
        super().__init__()
        self.predictions = TinyBertLMPredictionHead(config)

    def forward(self, sequence_output: torch.Tensor) -> torch.Tensor:
        return self.predictions(sequence_output)


def _corrupt_safetensors_message(name_or_path, error: Exception) -> str:
    """Name the local safetensors file that cannot be read (a crash or a full disk while writing truncates one)."""
    from safetensors import safe_open  # a dependency of transformers

    unreadable = []
    for path in sorted(Path(name_or_path).glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt"):
                pass
        except Exception:
            unreadable.append(str(path))
    where = ", ".join(unreadable) if unreadable else f"The safetensors weights of {name_or_path}"
    return (
        f"{where} could not be read ({error}): the file is truncated or corrupted, e.g. by a crash or a full disk "
        "while it was written. Save or download it again."
    )


class TinyBertPreTrainedModel(PreTrainedModel):
    """Weight initialization, checkpoint compatibility and the distillation projection shared by TinyBERT models."""

    config_class = TinyBertConfig
    # "bert" on purpose: BertModel/BertFor* checkpoints, the published TinyBERT ones included, load by key.
    base_model_prefix = "bert"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _no_split_modules = ["TinyBertEmbeddings", "TinyBertLayer"]
    # The projection is dropped on purpose by `remove_distillation_projection`; old checkpoints still carry it.
    _keys_to_ignore_on_load_unexpected = [r"fit_dense\."]
    # The heads compute their loss from `labels` alone: Trainer must scale the loss for gradient accumulation.
    accepts_loss_kwargs = False

    def __init__(self, config: TinyBertConfig, *inputs, **kwargs):
        config.check_model_shapes()  # a config is checked when a model is built from it, as BERT's is
        super().__init__(config, *inputs, **kwargs)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, TinyBertLMPredictionHead):
            init.zeros_(module.bias)
        elif isinstance(module, TinyBertEmbeddings):
            init.copy_(module.position_ids, torch.arange(module.position_ids.shape[-1]).expand((1, -1)))
            init.zeros_(module.token_type_ids)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        r"""
        [`PreTrainedModel.from_pretrained`] that also reads the published TinyBERT checkpoints, which keep the
        distillation projection at the top level (`fit_dense.*`) instead of in the encoder (`bert.fit_dense.*`).

        Only safetensors weights are read unless `use_safetensors=False` is passed (pickle-based `.bin` files can
        run code when loaded: pass it only for checkpoints you trust, such as the original TinyBERT releases). A
        truncated or invalid safetensors file is an `OSError` naming the file.
        """
        if cls is not TinyBertModel:
            key_mapping = dict(_PUBLISHED_TINYBERT_KEY_MAPPING)
            key_mapping.update(kwargs.get("key_mapping") or {})
            kwargs["key_mapping"] = key_mapping
        safetensors_only = kwargs.setdefault("use_safetensors", True)
        try:
            return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        except OSError as error:
            local = Path(pretrained_model_name_or_path)
            pickles = sorted(path for path in local.glob("*.bin") if path.name != "training_args.bin")
            if not safetensors_only or not pickles or any(local.glob("*.safetensors")):
                raise
            raise OSError(
                f"{pretrained_model_name_or_path} holds weights only as pickles ({pickles[0].name}), which can run "
                "code when loaded; pass `use_safetensors=False` if you trust their source, or re-save them with "
                "`save_pretrained` (safetensors)."
            ) from error
        except RuntimeError as error:
            if "ignore_mismatched_sizes" not in str(error) or kwargs.get("ignore_mismatched_sizes"):
                raise
            # transformers only logs which shapes differ; load again tolerantly to name them in the error.
            kwargs.update(ignore_mismatched_sizes=True, output_loading_info=True)
            _, info = super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
            mismatched = sorted(info["mismatched_keys"])
            listing = "; ".join(
                f"{key}: checkpoint {tuple(saved)} vs model {tuple(model)}" for key, saved, model in mismatched[:5]
            )
            raise RuntimeError(  # transformers' type for it: code catching transformers' error still catches this
                f"The checkpoint in {pretrained_model_name_or_path} does not fit this model's shapes "
                f"({len(mismatched)} tensors differ, e.g. {listing}). Load it with the config saved next to it, "
                "or build a smaller student from it with `student_from_teacher_layers` (or pruning)."
            ) from error
        except Exception as error:
            if type(error).__name__ != "SafetensorError":
                raise
            raise OSError(_corrupt_safetensors_message(pretrained_model_name_or_path, error)) from error

    def save_pretrained(self, save_directory, *args, **kwargs):
        r"""
        [`PreTrainedModel.save_pretrained`], with the config's `auto_map` naming every TinyBERT Auto class so the
        shipped modeling code serves `AutoModel`, `AutoModelFor*` and `pipeline` alike under `trust_remote_code`.
        """
        self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}), **TINYBERT_AUTO_MAP}
        return super().save_pretrained(save_directory, *args, **kwargs)

    def remove_distillation_projection(self) -> None:
        """
        Drop `fit_dense` and unset `config.fit_size`: the projection only serves distillation losses, so a student
        shipped for inference need not carry it. Saved afterwards, the checkpoint has no `fit_dense` weights; an
        older checkpoint that has them still loads into this config, the projection being ignored.

        Example:

        ```python
        >>> from tinybert_hf import TinyBertConfig, TinyBertModel

        >>> model = TinyBertModel(TinyBertConfig(hidden_size=32, num_attention_heads=4, fit_size=64))
        >>> model.remove_distillation_projection()
        >>> model.fit_dense is None, model.config.fit_size is None
        (True, True)

        ```
        """
        self.base_model.fit_dense = None
        self.config.fit_size = None

    def batches_to_check(
        self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None, attention_mask: torch.Tensor | None
    ) -> None:
        """Raise a `ValueError` naming the problem before torch fails deep inside an embedding lookup."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of `input_ids` and `inputs_embeds`.")
        input_shape = tuple((input_ids if input_ids is not None else inputs_embeds).shape[:2])
        if attention_mask is not None and tuple(attention_mask.shape) != input_shape:
            raise ValueError(
                f"`attention_mask` must have the inputs' shape (batch_size, sequence_length) = {input_shape}, "
                f"got {tuple(attention_mask.shape)}."
            )
        seq_length = input_shape[1]
        if seq_length > self.config.max_position_embeddings:
            raise ValueError(
                f"The sequence has {seq_length} tokens but the model's position table holds "
                f"{self.config.max_position_embeddings}; truncate the inputs, e.g. `tokenizer(..., truncation=True, "
                f"max_length={self.config.max_position_embeddings})`."
            )
        bounds = _bounds_outside(input_ids, self.config.vocab_size) if input_ids is not None else None
        if bounds is not None:
            raise ValueError(
                f"Token ids must lie in [0, {self.config.vocab_size}) (the model's `vocab_size`), got ids in "
                f"[{bounds[0]}, {bounds[1]}]. Was the input made by another model's tokenizer?"
            )


def _bounds_outside(values: torch.Tensor, upper: int, ignored: int | None = None) -> tuple[int, int] | None:
    """`(min, max)` of integer `values` (other than `ignored`) when some lie outside `[0, upper)`, else None. Skipped
    while compiling, where reading the bounds back to the host would break the graph."""
    if torch.compiler.is_compiling():
        return None
    if ignored is not None:
        values = values[values != ignored]
    if values.numel() == 0:
        return None
    low, high = int(values.min()), int(values.max())
    return (low, high) if low < 0 or high >= upper else None


class TinyBertModel(TinyBertPreTrainedModel):
    r"""
    The bare TinyBERT encoder, returning hidden states, the pooled first token and, on request, what distillation
    compares: attention probabilities and pre-softmax scores, and hidden states projected to the teacher's width.

    Args:
        config ([`TinyBertConfig`]):
            Model configuration.
        add_pooling_layer (`bool`, *optional*, defaults to `True`):
            Whether to build the pooler (not needed by token-level heads).

    Example:

    ```python
    >>> import torch
    >>> from tinybert_hf import TinyBertConfig, TinyBertModel

    >>> config = TinyBertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, fit_size=64)
    >>> model = TinyBertModel(config)
    >>> out = model(torch.tensor([[1, 5, 7, 2]]), output_attention_scores=True, output_fit_hidden_states=True)
    >>> len(out.fit_hidden_states), out.fit_hidden_states[0].shape, out.attention_scores[0].shape
    (3, torch.Size([1, 4, 64]), torch.Size([1, 4, 4, 4]))

    ```
    """

    def __init__(self, config: TinyBertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = TinyBertEmbeddings(config)
        self.encoder = TinyBertEncoder(config)
        self.pooler = TinyBertPooler(config) if add_pooling_layer else None
        self.fit_dense = nn.Linear(config.hidden_size, config.fit_size) if config.has_fit_dense else None
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        output_attention_scores: bool = False,
        output_fit_hidden_states: bool = False,
        return_dict: bool | None = None,
    ) -> TinyBertModelOutput | tuple:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`):
                Token ids from the teacher's tokenizer.
            attention_mask (`torch.Tensor` of shape `(batch_size, sequence_length)`, *optional*):
                1 for real tokens, 0 for padding.
            token_type_ids, position_ids, inputs_embeds:
                As in [`BertModel`].
            output_attentions (`bool`, *optional*):
                Return attention probabilities (runs the eager attention path).
            output_hidden_states (`bool`, *optional*):
                Return the `num_hidden_layers + 1` hidden states, embeddings first.
            output_attention_scores (`bool`, *optional*, defaults to `False`):
                Return the pre-softmax, pre-mask scores (runs the eager attention path).
            output_fit_hidden_states (`bool`, *optional*, defaults to `False`):
                Return the hidden states projected to `config.fit_size`.
            return_dict (`bool`, *optional*):
                Return a [`TinyBertModelOutput`] instead of a tuple.
        """
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        return_dict = self.config.return_dict if return_dict is None else return_dict
        self.batches_to_check(input_ids, inputs_embeds, attention_mask)

        embedding_output = self.embeddings(
            input_ids=input_ids, token_type_ids=token_type_ids, position_ids=position_ids, inputs_embeds=inputs_embeds
        )
        if output_attentions or output_attention_scores:
            encoder_mask = self._additive_attention_mask(attention_mask, embedding_output.dtype)
        else:
            # In the format the configured attention implementation expects (None when nothing is padded).
            encoder_mask = create_bidirectional_mask(
                config=self.config, inputs_embeds=embedding_output, attention_mask=attention_mask
            )
        sequence_output, hidden_states, attentions, attention_scores = self.encoder(
            embedding_output,
            encoder_mask,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states or output_fit_hidden_states,
            output_attention_scores=output_attention_scores,
        )
        pooled_output = self.pooler(sequence_output) if self.pooler is not None else None
        fit_hidden_states = None
        if output_fit_hidden_states:
            fit_hidden_states = tuple(self.project_to_teacher(h) for h in hidden_states)
        if not output_hidden_states:
            hidden_states = None

        output = TinyBertModelOutput(
            last_hidden_state=sequence_output,
            pooler_output=pooled_output,
            hidden_states=hidden_states,
            attentions=attentions,
            attention_scores=attention_scores,
            fit_hidden_states=fit_hidden_states,
        )
        return output if return_dict else output.to_tuple()

    def project_to_teacher(self, hidden_state: torch.Tensor) -> torch.Tensor:
        """Map `(batch, seq, hidden_size)` to `(batch, seq, fit_size)`; identity when the widths are equal."""
        return hidden_state if self.fit_dense is None else self.fit_dense(hidden_state)

    @staticmethod
    def _additive_attention_mask(attention_mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
        """`(batch, seq)` 1/0 padding mask -> `(batch, 1, 1, seq)` additive mask for the score-returning path."""
        if attention_mask is None:
            return None
        keep = attention_mask[:, None, None, :].to(torch.bool)
        return torch.zeros(keep.shape, dtype=dtype, device=keep.device).masked_fill(~keep, torch.finfo(dtype).min)


class TinyBertForSequenceClassification(TinyBertPreTrainedModel):
    r"""
    TinyBERT with a linear classifier on the pooled first token, for single-label and multi-label classification
    and regression; the loss follows `config.problem_type`, inferred from `num_labels` and the label dtype when
    unset (as in BERT).

    Example:

    ```python
    >>> import torch
    >>> from tinybert_hf import TinyBertConfig, TinyBertForSequenceClassification

    >>> config = TinyBertConfig(vocab_size=99, hidden_size=32, num_attention_heads=4, num_labels=3)
    >>> model = TinyBertForSequenceClassification(config)
    >>> model(torch.tensor([[1, 5, 7, 2]]), labels=torch.tensor([2])).logits.shape
    torch.Size([1, 3])

    ```
    """

    def __init__(self, config: TinyBertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = TinyBertModel(config)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        output_attention_scores: bool = False,
        output_fit_hidden_states: bool = False,
        return_dict: bool | None = None,
    ) -> TinyBertSequenceClassifierOutput | tuple:
        r"""
        labels (`torch.Tensor` of shape `(batch_size,)` or `(batch_size, num_labels)`, *optional*):
            Class indices for single-label classification, 0/1 floats per label for multi-label classification,
            targets for regression. Other arguments as in [`TinyBertModel.forward`].
        """
        return_dict = self.config.return_dict if return_dict is None else return_dict
        outputs = self.bert(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            output_attention_scores=output_attention_scores,
            output_fit_hidden_states=output_fit_hidden_states,
            return_dict=True,
        )
        logits = self.classifier(self.dropout(outputs.pooler_output))  # (batch, num_labels)
        loss = self._classification_loss(logits, labels) if labels is not None else None
        output = TinyBertSequenceClassifierOutput(
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            attention_scores=outputs.attention_scores,
            fit_hidden_states=outputs.fit_hidden_states,
        )
        return output if return_dict else output.to_tuple()

    def _classification_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.config.problem_type is None:
            if self.num_labels == 1:
                self.config.problem_type = "regression"
            elif labels.dtype in (torch.long, torch.int):
                self.config.problem_type = "single_label_classification"
            else:
                self.config.problem_type = "multi_label_classification"
        if self.config.problem_type == "regression":
            if self.num_labels == 1:
                # (batch,) both: squeezing a batch of one would leave a scalar label against (1,) logits
                return MSELoss()(logits.reshape(-1), labels.reshape(-1).to(logits.dtype))
            return MSELoss()(logits, labels.to(logits.dtype))
        if self.config.problem_type == "single_label_classification":
            # -100 marks an unlabelled row, which the cross-entropy ignores (as BertForSequenceClassification's)
            bounds = _bounds_outside(labels, self.num_labels, ignored=-100)
            if bounds is not None:
                raise ValueError(
                    f"Labels must lie in [0, {self.num_labels}) (`num_labels`) or be -100 (ignored), got labels in "
                    f"[{bounds[0]}, {bounds[1]}]."
                )
            return CrossEntropyLoss()(logits.view(-1, self.num_labels), labels.view(-1))
        return BCEWithLogitsLoss()(logits, labels.to(logits.dtype))


class TinyBertForTokenClassification(TinyBertPreTrainedModel):
    r"""
    TinyBERT with a linear classifier on every token (NER, POS tagging); label -100 marks ignored positions.

    Example:

    ```python
    >>> import torch
    >>> from tinybert_hf import TinyBertConfig, TinyBertForTokenClassification

    >>> config = TinyBertConfig(vocab_size=99, hidden_size=32, num_attention_heads=4, num_labels=5)
    >>> TinyBertForTokenClassification(config)(torch.tensor([[1, 5, 7, 2]])).logits.shape
    torch.Size([1, 4, 5])

    ```
    """

    def __init__(self, config: TinyBertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = TinyBertModel(config, add_pooling_layer=False)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        output_attention_scores: bool = False,
        output_fit_hidden_states: bool = False,
        return_dict: bool | None = None,
    ) -> TinyBertTokenClassifierOutput | tuple:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
            Class index per token, -100 where no loss is taken. Other arguments as in [`TinyBertModel.forward`].
        """
        return_dict = self.config.return_dict if return_dict is None else return_dict
        outputs = self.bert(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            output_attention_scores=output_attention_scores,
            output_fit_hidden_states=output_fit_hidden_states,
            return_dict=True,
        )
        logits = self.classifier(self.dropout(outputs.last_hidden_state))  # (batch, seq, num_labels)
        loss = None
        if labels is not None:
            loss = CrossEntropyLoss()(logits.view(-1, self.num_labels), labels.view(-1))
        output = TinyBertTokenClassifierOutput(
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            attention_scores=outputs.attention_scores,
            fit_hidden_states=outputs.fit_hidden_states,
        )
        return output if return_dict else output.to_tuple()


class TinyBertForMaskedLM(TinyBertPreTrainedModel):
    r"""
    TinyBERT with BERT's masked-language-model head (decoder tied to the word embeddings): the student shape of
    general distillation, and a masked LM for data augmentation.

    Example:

    ```python
    >>> import torch
    >>> from tinybert_hf import TinyBertConfig, TinyBertForMaskedLM

    >>> config = TinyBertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4)
    >>> TinyBertForMaskedLM(config)(torch.tensor([[1, 5, 7, 2]])).logits.shape
    torch.Size([1, 4, 99])

    ```
    """

    _tied_weights_keys = {
        "cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
        "cls.predictions.decoder.bias": "cls.predictions.bias",
    }
    # BERT pre-training checkpoints (the published TinyBERT general ones too) also carry a next-sentence head.
    _keys_to_ignore_on_load_unexpected = [r"fit_dense\.", r"cls\.seq_relationship", r"pooler\."]

    def __init__(self, config: TinyBertConfig):
        super().__init__(config)
        self.bert = TinyBertModel(config, add_pooling_layer=False)
        self.cls = TinyBertOnlyMLMHead(config)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.cls.predictions.decoder

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.cls.predictions.decoder = new_embeddings
        self.cls.predictions.bias = new_embeddings.bias

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        output_attention_scores: bool = False,
        output_fit_hidden_states: bool = False,
        return_dict: bool | None = None,
    ) -> TinyBertMaskedLMOutput | tuple:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
            Original token ids at masked positions, -100 elsewhere. Other arguments as in [`TinyBertModel.forward`].
        """
        return_dict = self.config.return_dict if return_dict is None else return_dict
        outputs = self.bert(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            output_attention_scores=output_attention_scores,
            output_fit_hidden_states=output_fit_hidden_states,
            return_dict=True,
        )
        logits = self.cls(outputs.last_hidden_state)  # (batch, seq, vocab)
        loss = None
        if labels is not None:
            loss = CrossEntropyLoss()(logits.view(-1, self.config.vocab_size), labels.view(-1))
        output = TinyBertMaskedLMOutput(
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            attention_scores=outputs.attention_scores,
            fit_hidden_states=outputs.fit_hidden_states,
        )
        return output if return_dict else output.to_tuple()


__all__ = [
    "TinyBertForMaskedLM",
    "TinyBertForSequenceClassification",
    "TinyBertForTokenClassification",
    "TinyBertModel",
    "TinyBertModelOutput",
    "TinyBertPreTrainedModel",
]
