"""Giving a full-INT8 TFLite model a float interface (float in, float out), int8 kernels inside.

litert-torch turns a converted PT2E graph into a model whose input and output tensors are int8. Many
apps would rather hand over float pixels: this adds a QUANTIZE op in front of each int8 input and a
DEQUANTIZE op after each int8 output (with the model's own scale and zero point), the same layout
TFLite's own converter produces for float-interface INT8 models. The file's ops are edited through
the flatbuffer schema that ships with ai-edge-litert; nothing else in the model changes.
"""

from __future__ import annotations

import flatbuffers

from edgekd.utils.quiet import quiet_import

schema = quiet_import("ai_edge_litert.schema_py_generated")

_FILE_IDENTIFIER = b"TFL3"
_OP_VERSION = 2  # QUANTIZE / DEQUANTIZE from/to int8 are version 2 of each op


def float_interface(model_bytes: bytes) -> bytes:
    """The same model with float32 inputs and outputs in place of int8 ones."""
    model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    quantize = _opcode(model, schema.BuiltinOperator.QUANTIZE)
    dequantize = _opcode(model, schema.BuiltinOperator.DEQUANTIZE)
    for subgraph_index, subgraph in enumerate(model.subgraphs):
        renamed: dict[int, int] = {}
        for position, tensor_index in enumerate(subgraph.inputs):
            if subgraph.tensors[tensor_index].type == schema.TensorType.INT8:
                outer = _float_twin(model, subgraph, tensor_index)
                subgraph.operators.insert(0, _operator(quantize, outer, tensor_index))
                subgraph.inputs[position] = renamed[tensor_index] = outer
        for position, tensor_index in enumerate(subgraph.outputs):
            if subgraph.tensors[tensor_index].type == schema.TensorType.INT8:
                outer = _float_twin(model, subgraph, tensor_index)
                subgraph.operators.append(_operator(dequantize, tensor_index, outer))
                subgraph.outputs[position] = renamed[tensor_index] = outer
        for signature in model.signatureDefs or []:
            if signature.subgraphIndex == subgraph_index:
                for entry in (signature.inputs or []) + (signature.outputs or []):
                    entry.tensorIndex = renamed.get(entry.tensorIndex, entry.tensorIndex)
    builder = flatbuffers.Builder(len(model_bytes) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=_FILE_IDENTIFIER)
    return bytes(builder.Output())


def _opcode(model, builtin: int) -> int:
    for index, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            code.version = max(code.version, _OP_VERSION)
            return index
    code = schema.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, 127)
    code.version = _OP_VERSION
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _float_twin(model, subgraph, tensor_index: int) -> int:
    """A new float32 tensor shaped like ``tensor_index``; returns its index."""
    inner = subgraph.tensors[tensor_index]
    model.buffers.append(schema.BufferT())
    twin = schema.TensorT()
    twin.shape = list(inner.shape)
    twin.shapeSignature = list(inner.shapeSignature) if inner.shapeSignature is not None else None
    twin.type = schema.TensorType.FLOAT32
    twin.buffer = len(model.buffers) - 1
    twin.name = (inner.name.decode() if isinstance(inner.name, bytes) else str(inner.name)) + "_float"
    twin.hasRank = inner.hasRank
    subgraph.tensors.append(twin)
    return len(subgraph.tensors) - 1


def _operator(opcode_index: int, source: int, target: int):
    operator = schema.OperatorT()
    operator.opcodeIndex = opcode_index
    operator.inputs = [source]
    operator.outputs = [target]
    return operator
