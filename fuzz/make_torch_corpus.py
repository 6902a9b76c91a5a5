"""Writes the PyTorch half of the fuzz seed corpora (fuzz/corpus/<target>/):
files that torch.save, torch.distributed.checkpoint (DCP) and safetensors
wrote. Needs a Python with torch and safetensors (not a dependency of dcpp;
the outputs are committed). usage: python make_torch_corpus.py <corpus dir>"""
import io
import os
import pickle
import sys
import tempfile
import zipfile

import torch
import torch.distributed.checkpoint as dcp
from safetensors.torch import save_file


def put(out, target, name, data):
    os.makedirs(os.path.join(out, target), exist_ok=True)
    path = os.path.join(out, target, name)
    with open(path, "wb") as f:
        f.write(data)
    print(path)


def main(out):
    torch.manual_seed(5)
    net = torch.nn.Sequential(torch.nn.Linear(10, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    states = {
        "mlp": {k: v for k, v in net.state_dict().items()},
        "values": {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3),
                   "t": torch.arange(6, dtype=torch.float32).reshape(2, 3).t(),
                   "h": torch.ones(3, dtype=torch.float16), "b16": torch.ones(2, dtype=torch.bfloat16),
                   "i": torch.arange(4, dtype=torch.int64), "flag": torch.tensor([True, False]),
                   "step": 3, "lr": 0.5, "name": "x", "blob": b"\x00\xff", "betas": (0.9, 0.99),
                   "nested": {"a": [1, 2], "c": [torch.ones(2)]}},
    }
    for tag, sd in states.items():
        with tempfile.TemporaryDirectory() as d:
            dcp.save(sd, checkpoint_id=d)
            meta = open(os.path.join(d, ".metadata"), "rb").read()
            put(out, "torch_dcp_metadata", f"torch-{tag}", meta)
            put(out, "pickle", f"torch-dcp-metadata-{tag}", meta)
            for name in sorted(os.listdir(d)):
                if name.endswith(".distcp"):
                    put(out, "torch_save", f"torch-{tag}-{name}", open(os.path.join(d, name), "rb").read())
        tensors = {k: v.contiguous() for k, v in sd.items() if isinstance(v, torch.Tensor)}
        with tempfile.TemporaryDirectory() as d:
            save_file(tensors, os.path.join(d, "m.safetensors"), metadata={"format": "pt"})
            put(out, "safetensors_header", f"torch-{tag}.safetensors", open(os.path.join(d, "m.safetensors"), "rb").read())
    # Single items as DCP stores them: one torch.save archive each.
    for name, obj in [("tensor", torch.arange(12, dtype=torch.float32).reshape(3, 4)),
                      ("view", torch.arange(12, dtype=torch.float32).reshape(3, 4)[1:, ::2]),
                      ("int", 7), ("str", "hello"), ("bytes", b"\x01\x02"), ("dict", {"a": 1.5})]:
        buf = io.BytesIO()
        torch.save(obj, buf)
        put(out, "torch_save", f"torch-save-{name}", buf.getvalue())
        with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as z:
            for entry in z.namelist():
                if entry.endswith("data.pkl"):
                    put(out, "pickle", f"torch-save-{name}-data.pkl", z.read(entry))
    for proto in (2, 3, 4, 5):
        put(out, "pickle", f"python-p{proto}", pickle.dumps(
            {"a": [1, 2.5, "s", b"b", None, True], "t": (1, (2, 3)), "big": 2**70, "neg": -5, "set": {1, 2}},
            protocol=proto))


if __name__ == "__main__":
    main(sys.argv[1])
