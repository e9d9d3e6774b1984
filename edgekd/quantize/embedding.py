"""Weight-only int8 embedding tables: int8 rows with one float scale per row, written at convert time.

PT2E's int8 scheme quantizes the inputs and weights of convolutions and linear layers; an embedding
lookup has neither, so its table would stay float in both exported files. In a small text model that
table is most of the file (all-MiniLM-L6-v2 trimmed to a corpus: 20 of 22 MiB). After QAT has trained
the float table with the rest of the model, each lookup in the converted graph is rewritten to gather
int8 rows and their scales and multiply: a Gather, a Cast and a Mul in ONNX and TFLite alike, a quarter
of the bytes, and an error of at most half a step of each row's own scale (symmetric, so zero stays
exactly zero, padding rows included).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce

import torch
from torch.fx import GraphModule

QMAX = 127  # symmetric int8: -127..127, the zero point 0
EMBEDDING = torch.ops.aten.embedding.default


def int8_rows(table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 rows, per-row scales as an (N, 1) column) of a float table."""
    table = table.detach().float()
    scale = table.abs().amax(dim=1, keepdim=True).clamp(min=torch.finfo(torch.float32).tiny) / QMAX
    return torch.round(table / scale).clamp(-QMAX, QMAX).to(torch.int8), scale


def int8_embedding_lookups(graph: GraphModule, tables: Sequence[str]) -> list[str]:
    """The lookups of the ``tables`` (``nn.Embedding`` module paths of the captured model) in ``graph``
    rewritten, in place, to read int8 rows times their scale; returns the paths rewritten."""
    wanted = {name.replace(".", "_"): name for name in tables}  # a graph may flatten the dotted paths
    rewritten = []
    for node in list(graph.graph.nodes):
        if node.op != "call_function" or node.target != EMBEDDING or node.args[0].op != "get_attr":
            continue
        table_name = node.args[0].target
        module_path = wanted.get(table_name.removesuffix("weight").rstrip("._").replace(".", "_"))
        if module_path is None:
            continue
        table = reduce(getattr, table_name.split("."), graph)
        if not table.is_floating_point():
            continue
        rows, scale = int8_rows(table)
        stem = table_name.replace(".", "_")
        graph.register_buffer(f"{stem}_int8", rows)
        graph.register_buffer(f"{stem}_scale", scale)
        with graph.graph.inserting_before(node):
            ids = node.args[1]
            picked = graph.graph.call_function(EMBEDDING, (graph.graph.get_attr(f"{stem}_int8"), ids))
            as_float = graph.graph.call_function(torch.ops.aten._to_copy.default, (picked,), {"dtype": torch.float32})
            scales = graph.graph.call_function(EMBEDDING, (graph.graph.get_attr(f"{stem}_scale"), ids))
            value = graph.graph.call_function(torch.ops.aten.mul.Tensor, (as_float, scales))
        node.replace_all_uses_with(value)
        graph.graph.erase_node(node)
        rewritten.append(module_path)
    if rewritten:
        graph.graph.eliminate_dead_code()
        graph.delete_all_unused_submodules()
        graph.recompile()
    return rewritten
