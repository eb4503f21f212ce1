"""Per-row int8: every token's activations get their own scale before each int8 matrix product.

ONNX Runtime's `quantize_dynamic` quantizes the input of every MatMul with one scale for the whole batch
(`DynamicQuantizeLinear`), so one token with a large activation coarsens all others, and a sentence's logits
depend on what it is batched with. CTranslate2 scales each row instead. The same rewrite in ONNX, on the main-job
TinyBERT4 student (512 test sentences, 2 threads, `benchmarks/int8_engines.py`): predictions equal to the fp32
student 98.0% per tensor, 99.6% per row; mean |logit change| 0.077 -> 0.013.

Each `MatMul(x, W)` with a constant 2-D `W` of shape `(K, N)` becomes

```
m  = Max(ReduceMax(Abs(x), axis -1), eps)         # (batch, sequence, 1): each token's largest magnitude
xq = QuantizeLinear(x / m, 1 / 127, 128)           # (batch, sequence, K) uint8, symmetric around 128
y  = MatMulIntegerToFloat(xq, Wq, m, w_scale / 127, 128, w_zero_point)  # (batch, sequence, N) float, one kernel
```

with `Wq` int8 (or uint8 + 128) and `w_scale` one per output column (or one per tensor). Products sharing an input
(a layer's query, key and value) quantize it once. A fused `Attention` node (ONNX Runtime's BERT optimizer on a
TorchScript export) becomes such a product of its packed query/key/value weights, a `Split` and a
`MultiHeadAttention` node with the same heads and mask, so the attention core stays fused. Anything else (the
pooler and classifier `Gemm`s, the embeddings) is left to the caller.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# weight encodings: which MLAS kernel runs the product, and how many bits the weights keep
WEIGHT_TYPES = ("int8", "uint8")


def quantize_rowwise(
    fp32_path: str | Path,
    int8_path: str | Path,
    weight_type: str = "auto",
    per_channel: bool = True,
    reduce_range: bool = False,
    op_types: tuple[str, ...] | list[str] = ("MatMul", "Attention", "Gather"),
) -> dict[str, int]:
    r"""
    Rewrite the constant-weight `MatMul` (and fused `Attention`) nodes of an ONNX graph as per-row int8 products.

    Args:
        fp32_path (`str` or `Path`): the graph to rewrite (fp32 weights; other nodes may already be quantized).
        int8_path (`str` or `Path`): where the rewritten graph goes.
        weight_type (`str`, *optional*, defaults to `"auto"`):
            `"int8"`: uint8 activations x int8 weights (the fast kernel; on CPUs without VNNI its int16 pair sums can
            saturate, see [`~tinybert_hf.onnx.cpu_features.u8s8_saturates`]). `"uint8"`: uint8 x uint8
            (weights stored + 128; a kernel that never saturates, slower where VNNI is missing). `"auto"`: `"int8"`
            where this CPU computes it exactly, else `"uint8"` ([`~tinybert_hf.onnx.cpu_features.int8_weight_type`]).
        per_channel (`bool`, *optional*, defaults to `True`): one weight scale per output column, else per tensor.
        reduce_range (`bool`, *optional*, defaults to `False`): 7-bit weights (+-63), which cannot saturate the
            int8 kernel's int16 pair sums (255 * 63 * 2 < 32767), at some accuracy.
        op_types (`tuple[str]`, *optional*): which of `"MatMul"`, `"Attention"` and `"Gather"` (embedding tables,
            stored int8 with one scale per row) to rewrite.

    Returns:
        `dict[str, int]`: how many nodes of each type were rewritten.
    """
    import onnx

    if weight_type == "auto":
        from ..onnx.cpu_features import cpu_features, int8_weight_type

        weight_type = int8_weight_type(cpu_features())
    if weight_type not in WEIGHT_TYPES:
        raise ValueError(f"weight_type must be one of {('auto', *WEIGHT_TYPES)}, got {weight_type!r}.")
    model = onnx.load(str(fp32_path))
    rewriter = _Rewriter(model.graph, weight_type, per_channel, reduce_range)
    counts = {"MatMul": 0, "Attention": 0, "Gather": 0}
    nodes = []
    for node in model.graph.node:
        weight = rewriter.constant_matrix(node.input[1]) if len(node.input) > 1 else None
        if node.op_type == "MatMul" and node.domain == "" and "MatMul" in op_types and weight is not None:
            nodes += rewriter.matmul(node.input[0], weight, node.output[0])
            counts["MatMul"] += 1
        elif node.op_type == "Attention" and node.domain == "com.microsoft" and "Attention" in op_types:
            nodes += rewriter.attention(node, weight)
            counts["Attention"] += 1
        elif node.op_type == "Gather" and "Gather" in op_types and rewriter.embedding_table(node):
            nodes += rewriter.embedding(node)
            counts["Gather"] += 1
        else:
            nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    rewriter.drop_unused_weights(model.graph)
    if not any(opset.domain == "com.microsoft" for opset in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, str(int8_path))
    return {name: count for name, count in counts.items() if count}


class _Rewriter:
    """Builds the per-row nodes and their constants; remembers which inputs are already quantized."""

    def __init__(self, graph, weight_type: str, per_channel: bool, reduce_range: bool):
        from onnx import numpy_helper

        self.graph = graph
        self.initializers = {tensor.name: tensor for tensor in graph.initializer}
        self.numpy_helper = numpy_helper
        self.weight_type, self.per_channel, self.reduce_range = weight_type, per_channel, reduce_range
        self.quantized_inputs: dict[str, tuple[str, str]] = {}  # input -> (uint8 input, row scales (..., 1))
        self.used_weights: set[str] = set()
        self.count = 0
        self.constant("rowq_last_axis", np.array([-1], np.int64))
        self.constant("rowq_inv127", np.array(1 / 127, np.float32))
        self.constant("rowq_eps", np.array(1e-12, np.float32))  # an all-zero row gets a positive scale
        self.constant("rowq_zero_point", np.array(128, np.uint8))

    def constant(self, name: str, value: np.ndarray) -> str:
        if name not in self.initializers:
            tensor = self.numpy_helper.from_array(value, name)
            self.graph.initializer.append(tensor)
            self.initializers[name] = tensor
        return name

    def constant_matrix(self, name: str) -> str | None:
        """`name` when it is a constant fp32 matrix (a linear layer's weight)."""
        from onnx import TensorProto

        tensor = self.initializers.get(name)
        if tensor is None or len(tensor.dims) != 2 or tensor.data_type != TensorProto.FLOAT:
            return None
        return name

    def embedding_table(self, node) -> bool:
        """Whether `node` looks rows up in a constant fp32 matrix (an embedding table)."""
        axis = next((attribute.i for attribute in node.attribute if attribute.name == "axis"), 0)
        return node.domain == "" and axis == 0 and self.constant_matrix(node.input[0]) is not None

    def embedding(self, node) -> list:
        """`Gather(table, ids)` on an int8 copy of the table with one scale per row: `(...,) -> (..., D)`."""
        from onnx import TensorProto

        table = self.numpy_helper.to_array(self.initializers[node.input[0]]).astype(np.float32)  # (V, D)
        scale = (np.maximum(np.abs(table).max(axis=1), 1e-12) / 127).astype(np.float32)  # (V,)
        p = f"rowq_table{self.count}_"
        self.count += 1
        self.used_weights.add(node.input[0])
        quantized = self.constant(p + "quantized", np.round(table / scale[:, None]).astype(np.int8))
        scales = self.constant(p + "scale", scale[:, None])  # (V, 1): a gathered row scales its D values
        nodes = []
        rows = self._node(nodes, "Gather", [quantized, node.input[1]], p + "rows")  # (..., D) int8
        rows = self._node(nodes, "Cast", [rows], p + "rows_float", to=TensorProto.FLOAT)
        row_scales = self._node(nodes, "Gather", [scales, node.input[1]], p + "row_scales")  # (..., 1)
        self._node(nodes, "Mul", [rows, row_scales], node.output[0])
        return nodes

    def _node(self, nodes: list, op_type: str, inputs: list[str], output: str, domain: str = "", **attributes):
        from onnx import helper

        nodes.append(helper.make_node(op_type, inputs, [output], name=output, domain=domain, **attributes))
        return output

    def _quantize_input(self, x: str, nodes: list) -> tuple[str, str]:
        """uint8 `x` `(..., K)` (zero point 128) and its row scales `(..., 1)`, built once per input."""
        if x in self.quantized_inputs:
            return self.quantized_inputs[x]
        p = f"rowq_in{len(self.quantized_inputs)}_"
        magnitude = self._node(nodes, "Abs", [x], p + "abs")
        largest = self._node(nodes, "ReduceMax", [magnitude, "rowq_last_axis"], p + "amax", keepdims=1)  # (..., 1)
        scale = self._node(nodes, "Max", [largest, "rowq_eps"], p + "scale")  # an all-zero row divides by eps
        scaled = self._node(nodes, "Div", [x, scale], p + "scaled")  # (..., K) in [-1, 1]
        # one scalar scale and zero point: per-axis QuantizeLinear would need 2-D rows and one zero point per row;
        # the 1/127 goes into the weight scales, so the row scale is the row's largest magnitude itself
        quantized = self._node(nodes, "QuantizeLinear", [scaled, "rowq_inv127", "rowq_zero_point"], p + "xq")
        self.quantized_inputs[x] = (quantized, scale)
        return self.quantized_inputs[x]

    def _weights(self, name: str) -> tuple[str, str, str]:
        """The int8 (or uint8) copy of a `(K, N)` weight, its scales and zero points."""
        weight = self.numpy_helper.to_array(self.initializers[name]).astype(np.float32)
        levels = 63 if self.reduce_range else 127
        largest = np.abs(weight).max(axis=0) if self.per_channel else np.abs(weight).max()
        scale = np.asarray(np.maximum(largest, 1e-12) / levels, np.float32)  # (N,) or a scalar
        quantized = np.clip(np.round(weight / scale), -levels, levels).astype(np.int8)
        zero_point = np.zeros_like(scale, dtype=np.int8)
        if self.weight_type == "uint8":
            quantized = (quantized.astype(np.int16) + 128).astype(np.uint8)
            zero_point = np.full_like(scale, 128, dtype=np.uint8)
        p = f"rowq_w{self.count}_"
        self.count += 1
        self.used_weights.add(name)
        return (
            self.constant(p + "quantized", quantized),
            self.constant(p + "scale", (scale / 127).astype(np.float32)),  # with the activations' 1/127
            self.constant(p + "zero_point", zero_point),
        )

    def matmul(self, x: str, weight: str, output: str) -> list:
        """Nodes computing `output = x @ weight` `(..., K) -> (..., N)` through per-row uint8 activations."""
        nodes = []
        quantized, row_scale = self._quantize_input(x, nodes)
        weights, weight_scale, weight_zero_point = self._weights(weight)
        # output = (xq - 128) @ (Wq - w_zero_point) * row_scale * weight_scale, in one kernel
        self._node(
            nodes,
            "MatMulIntegerToFloat",
            [quantized, weights, row_scale, weight_scale, "rowq_zero_point", weight_zero_point],
            output,
            domain="com.microsoft",
        )
        return nodes

    def attention(self, node, weight: str | None) -> list:
        """A fused `Attention` node as a per-row product of its packed weights, a `Split` and `MultiHeadAttention`."""
        from onnx import helper

        attributes = {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}
        inputs = list(node.input) + [""] * (4 - len(node.input))
        unsupported = set(attributes) - {"num_heads", "qkv_hidden_sizes", "mask_filter_value", "scale"}
        if weight is None or unsupported or any(inputs[4:]):  # past state, attention bias: not a BERT encoder
            raise ValueError(
                f"Cannot rewrite the Attention node {node.name} per row (attributes {sorted(attributes)}, "
                f"{len(node.input)} inputs); quantize with activations='per_tensor' instead."
            )
        columns = self.initializers[weight].dims[1]
        sizes = list(attributes.get("qkv_hidden_sizes", [columns // 3] * 3))
        nodes = self.matmul(inputs[0], weight, node.output[0] + "_qkv")  # (batch, sequence, q + k + v)
        names = [f"{node.output[0]}_{part}" for part in ("query", "key", "value")]
        split = self.constant(f"rowq_split_{'_'.join(map(str, sizes))}", np.array(sizes, np.int64))
        nodes.append(helper.make_node("Split", [node.output[0] + "_qkv", split], names, name=names[0], axis=2))
        extra = {name: attributes[name] for name in ("mask_filter_value", "scale") if name in attributes}
        # inputs: query, key, value, bias (q + k + v,), key_padding_mask (batch,) lengths or (batch, sequence)
        nodes.append(
            helper.make_node(
                "MultiHeadAttention",
                [*names, inputs[2], inputs[3]],
                list(node.output[:1]),
                name=node.name or node.output[0],
                domain="com.microsoft",
                num_heads=attributes["num_heads"],
                **extra,
            )
        )
        return nodes

    def drop_unused_weights(self, graph) -> None:
        """Remove the fp32 weights no node reads any more (all rewritten products' originals)."""
        read = {name for node in graph.node for name in node.input}
        kept = [tensor for tensor in graph.initializer if tensor.name not in self.used_weights or tensor.name in read]
        del graph.initializer[:]
        graph.initializer.extend(kept)


__all__ = ["WEIGHT_TYPES", "quantize_rowwise"]
