#!/usr/bin/env python3
"""Converts recorded MoE routing into moesim's routing trace format (traces/README.md "Routing traces").

  convert_routing.py vllm OUT.csv REQUEST.npy [REQUEST.npy ...]
      Routed experts as vLLM returns them per request when routed-expert return is enabled: an integer
      array of shape (tokens, MoE layers, top_k), saved with numpy.save. Files are concatenated in the
      order given. Writes the tokens form (every token's expert ids at every layer).

  convert_routing.py sglang OUT.csv --top-k K DUMP.pt|DUMP.json [...]
      SGLang's expert distribution recorder dumps: either a dict whose "logical_count" is an array of
      shape (layers, experts) or (steps, layers, experts), or a list of per-forward-pass records, each a
      dict with "logical_count" (layers, experts) and optionally "forward_pass_id" (records of the same
      pass, e.g. from several ranks, are summed). .pt files need PyTorch; .json files hold the same
      structure with lists. Writes the counts form (per step, each expert's count at each layer).

Needs only the Python standard library (and PyTorch for .pt). Exit status 2 with a message naming the
file for input it cannot convert; the output is written to a temporary file and renamed, never partial.
"""

import argparse
import ast
import json
import os
import struct
import sys
import tempfile
from array import array


class InputError(Exception):
    pass


def read_npy(path):
    """Returns (shape, flat list of ints) of a .npy file of integers in C order."""
    with open(path, "rb") as stream:
        data = stream.read()
    if not data.startswith(b"\x93NUMPY") or len(data) < 10:
        raise InputError(f"{path}: expected a .npy file (numpy.save), the magic bytes are missing")
    major = data[6]
    if major == 1:
        (header_length,) = struct.unpack_from("<H", data, 8)
        start = 10
    elif major in (2, 3):
        (header_length,) = struct.unpack_from("<I", data, 8)
        start = 12
    else:
        raise InputError(f"{path}: expected .npy format version 1, 2 or 3, got {major}")
    try:
        header = ast.literal_eval(data[start:start + header_length].decode("latin1"))
        descr, fortran, shape = header["descr"], header["fortran_order"], tuple(header["shape"])
    except (ValueError, SyntaxError, KeyError, TypeError):
        raise InputError(f"{path}: expected a .npy header with descr, fortran_order and shape")
    if fortran:
        raise InputError(f"{path}: expected a C-ordered array, got fortran_order=True")
    kinds = {"i1": "b", "u1": "B", "i2": "h", "u2": "H", "i4": "i", "u4": "I", "i8": "q", "u8": "Q"}
    code = kinds.get(descr[1:]) if isinstance(descr, str) and len(descr) == 3 else None
    if code is None:
        raise InputError(f"{path}: expected an integer array (int8..int64), got dtype {descr!r}")
    values = array(code)
    if values.itemsize != int(descr[2]):
        raise InputError(f"{path}: this platform has no {descr} integers")
    payload = data[start + header_length:]
    count = 1
    for extent in shape:
        count *= extent
    if len(payload) != count * values.itemsize:
        raise InputError(f"{path}: expected {count} values of shape {shape}, the file is truncated or too long")
    values.frombytes(payload)
    if descr[0] == ">" or (descr[0] == "=" and sys.byteorder == "big"):
        if sys.byteorder == "little":
            values.byteswap()
    return shape, values


def write_atomically(out_path, write):
    directory = os.path.dirname(os.path.abspath(out_path))
    handle, temporary = tempfile.mkstemp(prefix=".convert_routing.", dir=directory)
    try:
        with os.fdopen(handle, "w") as stream:
            write(stream)
        os.replace(temporary, out_path)
    except BaseException:
        os.unlink(temporary)
        raise


def convert_vllm(out_path, inputs):
    arrays = []
    layers = top_k = None
    experts = 0
    for path in inputs:
        shape, values = read_npy(path)
        if len(shape) != 3 or shape[1] < 1 or shape[2] < 1:
            raise InputError(f"{path}: expected shape (tokens, MoE layers, top_k), got {shape}")
        if layers is not None and (shape[1], shape[2]) != (layers, top_k):
            raise InputError(f"{path}: expected {layers} layers and top_k {top_k} as in {inputs[0]}, got {shape}")
        layers, top_k = shape[1], shape[2]
        if len(values) and min(values) < 0:
            raise InputError(f"{path}: expected expert ids >= 0, got {min(values)}")
        experts = max(experts, max(values) + 1 if len(values) else 0)
        arrays.append((path, shape, values))
    # The recording does not name the expert count: the largest id + 1 is a lower bound; the simulated
    # model's count is checked when the trace is replayed.
    experts = max(experts, top_k)

    def write(stream):
        stream.write(f"# moesim routing trace: form=tokens layers={layers} experts={experts} top_k={top_k}\n")
        stream.write("token,layer,experts\n")
        token = 0
        for path, shape, values in arrays:
            for t in range(shape[0]):
                for layer in range(layers):
                    begin = (t * layers + layer) * top_k
                    ids = values[begin:begin + top_k]
                    if len(set(ids)) != top_k:
                        raise InputError(f"{path}: token {t}, layer {layer}: expected {top_k} distinct expert ids, "
                                         f"got {list(ids)}")
                    stream.write(f"{token},{layer},{' '.join(map(str, ids))}\n")
                token += 1
        if token == 0:
            raise InputError(f"{inputs[0]}: expected at least one token")

    write_atomically(out_path, write)


def load_sglang(path):
    if path.endswith(".json"):
        with open(path) as stream:
            try:
                return json.load(stream)
            except json.JSONDecodeError as error:
                raise InputError(f"{path}: expected JSON ({error})")
    try:
        import torch  # noqa: PLC0415 - optional, only for .pt dumps
    except ImportError:
        raise InputError(f"{path}: reading a .pt dump needs PyTorch (pip install torch), or save it as JSON")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many kinds for a bad or non-tensor file
        raise InputError(f"{path}: expected a dump of tensors, dicts and lists that torch.load reads with "
                         f"weights_only=True ({error})")


def as_list(value):
    return value.tolist() if hasattr(value, "tolist") else value


def matrix(path, where, value):
    rows = as_list(value)
    if (not isinstance(rows, list) or not rows or not all(isinstance(r, list) and r for r in rows)
            or len({len(r) for r in rows}) != 1 or not all(isinstance(c, int) and c >= 0 for r in rows for c in r)):
        raise InputError(f"{path}: {where}: expected a (layers, experts) array of non-negative integers")
    return rows


def convert_sglang(out_path, top_k, inputs):
    steps = []  # (path, pass name, layers x experts count matrix) in order
    for path in inputs:
        dump = load_sglang(path)
        if isinstance(dump, dict) and "logical_count" in dump:
            counts = as_list(dump["logical_count"])
            if isinstance(counts, list) and counts and isinstance(counts[0], list) and counts[0] and \
                    isinstance(counts[0][0], list):
                steps.extend((path, f"logical_count[{i}]", matrix(path, f"logical_count[{i}]", m))
                             for i, m in enumerate(counts))
            else:
                steps.append((path, "logical_count", matrix(path, "logical_count", counts)))
        elif isinstance(dump, list):
            passes = {}
            for i, record in enumerate(dump):
                if not isinstance(record, dict) or "logical_count" not in record:
                    raise InputError(f"{path}: record {i}: expected a dict with logical_count")
                m = matrix(path, f"record {i}: logical_count", record["logical_count"])
                key = record.get("forward_pass_id", i)
                if key in passes:
                    old = passes[key]
                    if len(old) != len(m) or len(old[0]) != len(m[0]):
                        raise InputError(f"{path}: record {i}: expected the shape of the pass's other records")
                    passes[key] = [[a + b for a, b in zip(ra, rb)] for ra, rb in zip(old, m)]
                else:
                    passes[key] = m
            # Pass ids are numbers in SGLang; any other kind sorts after them, by its text.
            order = sorted(passes, key=lambda key: (not isinstance(key, (int, float)), str(key) if not
                                                    isinstance(key, (int, float)) else key))
            steps.extend((path, f"forward pass {key}", passes[key]) for key in order)
        else:
            raise InputError(f"{path}: expected a dict with logical_count or a list of per-pass records")
    if not steps:
        raise InputError(f"{inputs[0]}: expected at least one forward pass")
    layers, experts = len(steps[0][2]), len(steps[0][2][0])
    if top_k < 1 or top_k > experts:
        raise InputError(f"--top-k: expected an integer in [1, {experts}], got {top_k}")
    kept = []
    for path, name, step in steps:
        if len(step) != layers or len(step[0]) != experts:
            raise InputError(f"{path}: {name}: expected {layers} layers x {experts} experts as in {steps[0][0]}, "
                             f"got {len(step)} x {len(step[0])}")
        totals = {sum(row) for row in step}
        # Passes without tokens (idle ranks) carry no routing.
        if totals == {0}:
            continue
        if len(totals) != 1 or next(iter(totals)) % top_k:
            raise InputError(f"{path}: {name}: expected every layer to hold the same tokens x top_k "
                             f"({top_k}) assignments, got totals {sorted(totals)}")
        tokens = next(iter(totals)) // top_k
        if max(max(row) for row in step) > tokens:
            raise InputError(f"{path}: {name}: expected no count above the pass's {tokens} tokens "
                             f"(a token takes an expert at most once)")
        kept.append(step)

    def write(stream):
        stream.write(f"# moesim routing trace: form=counts layers={layers} experts={experts} top_k={top_k}\n")
        stream.write("step,layer,counts\n")
        for index, step in enumerate(kept):
            for layer, row in enumerate(step):
                stream.write(f"{index},{layer},{' '.join(map(str, row))}\n")

    if not kept:
        raise InputError(f"{inputs[0]}: expected at least one forward pass with tokens")
    write_atomically(out_path, write)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", choices=["vllm", "sglang"])
    parser.add_argument("out")
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--top-k", type=int, default=0, help="routed experts per token (sglang)")
    options = parser.parse_args(argv)
    try:
        for path in options.inputs:
            if not os.path.isfile(path):
                raise InputError(f"{path}: cannot open file")
        if options.source == "vllm":
            convert_vllm(options.out, options.inputs)
        else:
            if options.top_k < 1:
                raise InputError("--top-k: expected the model's routed experts per token (a positive integer)")
            convert_sglang(options.out, options.top_k, options.inputs)
    except (InputError, OSError) as error:
        print(f"convert_routing: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
