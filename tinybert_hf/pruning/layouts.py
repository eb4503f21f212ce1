"""Where the prunable structures of each encoder family live: one description per family, one pruning code.

Structured pruning needs to know, for a model, which modules hold the attention heads, the FFN neurons and the
hidden (residual) channels of each layer, and which config fields record the shape. An [`EncoderLayout`] says so
by module paths, so that importance scoring (`importance.py`) and the cut itself (`structured.py`) are written once:

- BERT-like (BERT, TinyBERT, RoBERTa, XLM-R, CamemBERT, ELECTRA): `encoder.layer.i.attention.self.{query,key,value}`;
- DistilBERT: `transformer.layer.i.attention.{q,k,v,out}_lin`, `ffn.lin{1,2}`, config `dim` / `n_heads` / ...;
- MPNet: `attention.attn.{q,k,v,o}`, and one relative position bias shared by every layer, with a column per head,
  so every layer keeps the same heads;
- ModernBERT: a fused `Wqkv` (rows `[q | k | v]`), a gated FFN whose `Wi` rows are `[input | gate]`, rotary
  positions over the head width (which therefore cannot shrink), and a first layer without attention norm (so layer 0
  is always kept);
- DeBERTa-v2/v3: `attention.self.{query,key,value}_proj` (and `pos_{query,key}_proj` without shared keys). Its
  attention output is always `hidden -> hidden`, so its heads are `hidden / heads` wide, as in the other stock
  families. The convolution of DeBERTa-v2-xlarge is not described, and refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from torch import nn

from ..errors import BadInputError

# canonical shape names -> the config attributes of most families
_STANDARD_CONFIG_NAMES = {
    "num_hidden_layers": "num_hidden_layers",
    "hidden_size": "hidden_size",
    "num_attention_heads": "num_attention_heads",
    "intermediate_size": "intermediate_size",
}


@dataclass(frozen=True)
class EncoderLayout:
    r"""
    The module paths and rules of one encoder family's prunable structures.

    Args:
        layers (`str`):
            Path of the `nn.ModuleList` of transformer layers, from the base model.
        queries, keys (`tuple[str, ...]`):
            Per layer, the linears whose output rows are the heads' query (key) dimensions, head-major. Paths that a
            model lacks are skipped (DeBERTa's position projections exist only without shared keys).
        values (`tuple[str, ...]`):
            Same for the values.
        fused_qkv (`str`, *optional*):
            One linear with rows `[queries | keys | values]`, instead of `queries`/`keys`/`values`.
        attention_output (`str`):
            The linear that maps the heads' concatenated context `(heads * head_size)` back to the hidden size.
        ffn_input, ffn_output (`str`):
            The FFN's first linear (rows: neurons) and its second (columns: neurons).
        gated_ffn (`bool`):
            Whether `ffn_input` has two rows per neuron, `[input | gate]` (GLU).
        norms (`tuple[str, ...]`):
            Per layer, the norms whose outputs carry the residual stream: their channels are the hidden channels.
        embedding_norm, final_norm (`str`, *optional*):
            The embeddings' norm and a norm after the last layer, from the base model.
        head_bias (`str`, *optional*):
            An embedding with one column per head, shared by every layer (MPNet's relative position bias): every
            layer then keeps the same heads.
        head_size_field (`str`, *optional*):
            The config field that records a head width other than `hidden_size // num_attention_heads`; without
            one, the family's head width is always that quotient.
        fixed_head_size (`bool`):
            Whether the head width cannot change (rotary positions are defined over it).
        keeps_first_layer (`bool`):
            Whether layer 0 differs from the others in a way a pruned model cannot reproduce (ModernBERT's first
            layer has no attention norm), so a shallower model keeps it.
        config_names (`dict[str, str]`):
            Canonical shape names (`num_hidden_layers`, `hidden_size`, `num_attention_heads`, `intermediate_size`)
            to the family's config attributes.
        per_layer_shapes (`bool`):
            Whether the config can record different heads and FFN widths per layer (TinyBERT).
    """

    layers: str
    attention_output: str
    ffn_input: str
    ffn_output: str
    norms: tuple[str, ...]
    embedding_norm: str | None
    queries: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    values: tuple[str, ...] = ()
    fused_qkv: str | None = None
    gated_ffn: bool = False
    final_norm: str | None = None
    head_bias: str | None = None
    head_size_field: str | None = None
    fixed_head_size: bool = False
    keeps_first_layer: bool = False
    config_names: dict[str, str] = field(default_factory=lambda: dict(_STANDARD_CONFIG_NAMES))
    per_layer_shapes: bool = False

    def layer_modules(self, model: nn.Module) -> nn.ModuleList:
        """The transformer layers of `model` (a base model or one with a head)."""
        return model.base_model.get_submodule(self.layers)

    def shape(self, config, name: str) -> int:
        """The config's value of the canonical shape field `name`."""
        return getattr(config, self.config_names[name])

    def heads_of_layer(self, config, index: int) -> int:
        if self.per_layer_shapes:
            return config.num_attention_heads_of_layer(index)
        return self.shape(config, "num_attention_heads")

    def intermediate_size_of_layer(self, config, index: int) -> int:
        if self.per_layer_shapes:
            return config.intermediate_size_of_layer(index)
        return self.shape(config, "intermediate_size")

    def head_size(self, config) -> int:
        """The width of one head's queries, keys and values."""
        if self.per_layer_shapes:
            return config.head_size
        explicit = getattr(config, self.head_size_field, None) if self.head_size_field else None
        return explicit or self.shape(config, "hidden_size") // self.shape(config, "num_attention_heads")

    def linears(self, layer: nn.Module, paths: tuple[str, ...]) -> list[nn.Linear]:
        """The modules of `paths` that `layer` has (a path it lacks is skipped)."""
        found = []
        for path in paths:
            try:
                found.append(layer.get_submodule(path))
            except AttributeError:
                continue
        return found


BERT_LIKE = EncoderLayout(
    layers="encoder.layer",
    queries=("attention.self.query",),
    keys=("attention.self.key",),
    values=("attention.self.value",),
    attention_output="attention.output.dense",
    ffn_input="intermediate.dense",
    ffn_output="output.dense",
    norms=("attention.output.LayerNorm", "output.LayerNorm"),
    embedding_norm="embeddings.LayerNorm",
)

LAYOUTS: dict[str, EncoderLayout] = {
    "tinybert": replace(BERT_LIKE, head_size_field="attention_head_size", per_layer_shapes=True),
    "bert": BERT_LIKE,
    "roberta": BERT_LIKE,
    "xlm-roberta": BERT_LIKE,
    "camembert": BERT_LIKE,
    "electra": BERT_LIKE,
    "distilbert": EncoderLayout(
        layers="transformer.layer",
        queries=("attention.q_lin",),
        keys=("attention.k_lin",),
        values=("attention.v_lin",),
        attention_output="attention.out_lin",
        ffn_input="ffn.lin1",
        ffn_output="ffn.lin2",
        norms=("sa_layer_norm", "output_layer_norm"),
        embedding_norm="embeddings.LayerNorm",
        config_names={
            "num_hidden_layers": "n_layers",
            "hidden_size": "dim",
            "num_attention_heads": "n_heads",
            "intermediate_size": "hidden_dim",
        },
    ),
    "mpnet": EncoderLayout(
        layers="encoder.layer",
        queries=("attention.attn.q",),
        keys=("attention.attn.k",),
        values=("attention.attn.v",),
        attention_output="attention.attn.o",
        ffn_input="intermediate.dense",
        ffn_output="output.dense",
        norms=("attention.LayerNorm", "output.LayerNorm"),
        embedding_norm="embeddings.LayerNorm",
        head_bias="encoder.relative_attention_bias",
    ),
    "modernbert": EncoderLayout(
        layers="layers",
        fused_qkv="attn.Wqkv",
        attention_output="attn.Wo",
        ffn_input="mlp.Wi",
        ffn_output="mlp.Wo",
        gated_ffn=True,
        norms=("attn_norm", "mlp_norm"),
        embedding_norm="embeddings.norm",
        final_norm="final_norm",
        fixed_head_size=True,
        keeps_first_layer=True,
    ),
    "deberta-v2": EncoderLayout(
        layers="encoder.layer",
        queries=("attention.self.query_proj", "attention.self.pos_query_proj"),
        keys=("attention.self.key_proj", "attention.self.pos_key_proj"),
        values=("attention.self.value_proj",),
        attention_output="attention.output.dense",
        ffn_input="intermediate.dense",
        ffn_output="output.dense",
        norms=("attention.output.LayerNorm", "output.LayerNorm"),
        embedding_norm="embeddings.LayerNorm",
    ),
}

PRUNABLE_MODEL_TYPES = tuple(LAYOUTS)


def layout_of_config(config) -> EncoderLayout:
    """The [`EncoderLayout`] of the family `config` describes; a [`BadInputError`] naming the families that have one
    otherwise (checked before any work: the recipe asks it of a teacher's config before loading its weights)."""
    model_type = getattr(config, "model_type", None)
    if model_type not in LAYOUTS:
        raise BadInputError(
            f"Structured pruning knows the layout of {', '.join(PRUNABLE_MODEL_TYPES)} models, not of a "
            f"{model_type!r} model. Use a random or general-distilled student instead."
        )
    if model_type == "deberta-v2" and getattr(config, "conv_kernel_size", 0):
        raise BadInputError(
            "This DeBERTa-v2 model has a convolution after its embeddings (`conv_kernel_size`), whose channels "
            "structured pruning does not describe; prune a DeBERTa-v3 (no convolution) or use a random student."
        )
    return LAYOUTS[model_type]


def layout_of(model: nn.Module) -> EncoderLayout:
    """The [`EncoderLayout`] of `model`'s family (see [`layout_of_config`])."""
    return layout_of_config(getattr(model, "config", None))


__all__ = ["LAYOUTS", "PRUNABLE_MODEL_TYPES", "EncoderLayout", "layout_of", "layout_of_config"]
