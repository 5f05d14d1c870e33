#!/usr/bin/env python3
"""Tests tools/convert_routing.py: vLLM .npy and SGLang dumps (JSON form) to moesim routing traces,
and its refusals. Usage: convert_routing_test.py CONVERTER [MOESIM]; with MOESIM the converted traces
are also read back by `moesim routing inspect`."""

import json
import os
import struct
import subprocess
import sys
import tempfile

converter = sys.argv[1]
moesim = sys.argv[2] if len(sys.argv) > 2 else None
failures = []


def check(condition, message):
    if not condition:
        failures.append(message)


def save_npy(path, shape, values, descr="<i8", version=1):
    header = repr({"descr": descr, "fortran_order": False, "shape": tuple(shape)}).encode("latin1")
    prefix = 10 if version == 1 else 12
    header += b" " * ((64 - (prefix + len(header) + 1) % 64) % 64) + b"\n"
    code = {"<i8": "<q", "<i4": "<i", ">i4": ">i", "|u1": "<B"}[descr]
    with open(path, "wb") as stream:
        stream.write(b"\x93NUMPY" + bytes([version, 0]))
        stream.write(struct.pack("<H" if version == 1 else "<I", len(header)) + header)
        stream.write(struct.pack(f"{code[0]}{len(values)}{code[1:]}", *values))


def run(*args):
    return subprocess.run([sys.executable, converter, *args], capture_output=True, text=True)


with tempfile.TemporaryDirectory() as work:
    def path(name):
        return os.path.join(work, name)

    # vLLM: two requests, (tokens, layers=2, top_k=2).
    save_npy(path("a.npy"), (2, 2, 2), [0, 1, 2, 3, 3, 0, 1, 2])
    save_npy(path("b.npy"), (1, 2, 2), [5, 4, 0, 1], descr="<i4", version=2)
    result = run("vllm", path("tokens.csv"), path("a.npy"), path("b.npy"))
    check(result.returncode == 0, f"vllm conversion failed: {result.stderr}")
    with open(path("tokens.csv")) as stream:
        text = stream.read()
    check(text == "# moesim routing trace: form=tokens layers=2 experts=6 top_k=2\n"
                  "token,layer,experts\n"
                  "0,0,0 1\n0,1,2 3\n1,0,3 0\n1,1,1 2\n2,0,5 4\n2,1,0 1\n", f"vllm output differs:\n{text}")

    # SGLang: per-pass records, two ranks of pass 7 summed, an idle pass skipped.
    records = [
        {"forward_pass_id": 7, "rank": 0, "logical_count": [[1, 1, 0, 0], [0, 1, 1, 0]]},
        {"forward_pass_id": 7, "rank": 1, "logical_count": [[0, 0, 1, 1], [1, 0, 0, 1]]},
        {"forward_pass_id": 3, "rank": 0, "logical_count": [[1, 1, 0, 0], [0, 0, 1, 1]]},
        {"forward_pass_id": 9, "rank": 0, "logical_count": [[0, 0, 0, 0], [0, 0, 0, 0]]},
    ]
    with open(path("dump.json"), "w") as stream:
        json.dump(records, stream)
    result = run("sglang", path("counts.csv"), "--top-k", "2", path("dump.json"))
    check(result.returncode == 0, f"sglang conversion failed: {result.stderr}")
    with open(path("counts.csv")) as stream:
        text = stream.read()
    check(text == "# moesim routing trace: form=counts layers=2 experts=4 top_k=2\n"
                  "step,layer,counts\n"
                  "0,0,1 1 0 0\n0,1,0 0 1 1\n1,0,1 1 1 1\n1,1,1 1 1 1\n", f"sglang output differs:\n{text}")
    with open(path("stat.json"), "w") as stream:
        json.dump({"logical_count": [[[1, 1], [2, 0]], [[0, 2], [1, 1]]]}, stream)
    result = run("sglang", path("stat.csv"), "--top-k", "1", path("stat.json"))
    check(result.returncode == 0, f"sglang stat conversion failed: {result.stderr}")

    # Pass ids of mixed kinds sort numbers first, then text, without a traceback.
    with open(path("mixed.json"), "w") as stream:
        json.dump([{"forward_pass_id": "warmup", "logical_count": [[1, 1]]},
                   {"forward_pass_id": 2, "logical_count": [[2, 0]]}], stream)
    result = run("sglang", path("mixed.csv"), "--top-k", "1", path("mixed.json"))
    check(result.returncode == 0, f"mixed pass ids: {result.stderr}")
    with open(path("mixed.csv")) as stream:
        check(stream.read().endswith("0,0,2 0\n1,0,1 1\n"), "mixed pass ids: numbers first, then text")

    # Refusals: exit 2, a message naming the file, no output left behind.
    save_npy(path("flat.npy"), (4,), [0, 1, 2, 3])
    save_npy(path("repeat.npy"), (1, 1, 2), [3, 3])
    save_npy(path("negative.npy"), (1, 1, 2), [0, -1])
    with open(path("truncated.npy"), "wb") as stream:
        with open(path("a.npy"), "rb") as source:
            stream.write(source.read()[:-3])
    with open(path("text.npy"), "w") as stream:
        stream.write("not numpy")
    with open(path("bad.json"), "w") as stream:
        stream.write("[{\"logical_count\": [[1, -1]]}]")
    with open(path("uneven.json"), "w") as stream:
        json.dump([{"logical_count": [[1, 1], [2, 2]]}], stream)
    with open(path("twice.json"), "w") as stream:
        json.dump([{"logical_count": [[0, 2, 0]]}], stream)
    with open(path("broken.json"), "w") as stream:
        stream.write("{\"logical_count\": [[1,")
    bad = [
        (("vllm", path("x.csv"), path("flat.npy")), "expected shape (tokens, MoE layers, top_k)"),
        (("vllm", path("x.csv"), path("repeat.npy")), "expected 2 distinct expert ids"),
        (("vllm", path("x.csv"), path("negative.npy")), "expected expert ids >= 0"),
        (("vllm", path("x.csv"), path("truncated.npy")), "truncated"),
        (("vllm", path("x.csv"), path("text.npy")), "expected a .npy file"),
        (("vllm", path("x.csv"), path("missing.npy")), "cannot open file"),
        (("vllm", path("x.csv"), path("a.npy"), path("flat.npy")), "expected shape"),
        (("sglang", path("x.csv"), path("dump.json")), "--top-k"),
        (("sglang", path("x.csv"), "--top-k", "3", path("dump.json")), "forward pass 3: expected every layer to hold"),
        (("sglang", path("x.csv"), "--top-k", "9", path("dump.json")), "expected an integer in [1, 4]"),
        (("sglang", path("x.csv"), "--top-k", "1", path("bad.json")), "non-negative integers"),
        (("sglang", path("x.csv"), "--top-k", "1", path("uneven.json")), "expected every layer to hold"),
        (("sglang", path("x.csv"), "--top-k", "1", path("broken.json")), "expected JSON"),
        (("sglang", path("x.csv"), "--top-k", "2", path("twice.json")), "expected no count above the pass's 1 tokens"),
        (("sglang", path("x.csv"), "--top-k", "1", path("a.npy")), "PyTorch"),
    ]
    for args, message in bad:
        if os.path.exists(path("x.csv")):
            os.unlink(path("x.csv"))
        result = run(*args)
        check(result.returncode == 2, f"{args}: exit {result.returncode}, expected 2")
        check(message in result.stderr, f"{args}: stderr {result.stderr!r} lacks {message!r}")
        check(not os.path.exists(path("x.csv")), f"{args}: left an output file")
    check(not any(name.startswith(".convert_routing.") for name in os.listdir(work)), "left a temporary file")

    if moesim:
        for trace, model in ((path("tokens.csv"), "tokens"), (path("counts.csv"), "counts")):
            result = subprocess.run([moesim, "routing", "inspect", trace, "--ep", "2"], capture_output=True, text=True)
            check(result.returncode == 0 and f"form={model}" in result.stdout,
                  f"moesim routing inspect {trace}: exit {result.returncode}\n{result.stdout}{result.stderr}")

for failure in failures:
    print("FAIL:", failure)
print(f"{'FAILED' if failures else 'passed'}: convert_routing tests")
sys.exit(1 if failures else 0)
