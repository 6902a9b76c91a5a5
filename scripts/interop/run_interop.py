#!/usr/bin/env python3
"""dcpp <-> PyTorch interoperability check (`make interop`).

1. PyTorch saves, on 1, 2 and 4 gloo ranks (torch.multiprocessing spawn), the
   seed's MLPModule (Linear(10,16), relu, Linear(16,10), seed 5) and
   UnevenShardedModel (Linear(5,10), relu, Linear(10,15), Linear(15,1), seed 5)
   with the seed's TP plans, inside a nested state dict with Adam optimizer
   state and plain values, through torch.distributed.checkpoint.save with
   the FileSystemWriter and, where this torch has it, HuggingFaceStorageWriter
   (full layout, consolidated; and sharded). It dumps every full tensor and
   value (manifest.json + raw .bin files) as the expected result.
2. dcpp (build/tests/interop/dcpp_interop_tool) loads each checkpoint on
   other world sizes and compares bit-exactly.
3. dcpp saves the dumped state on 3 ranks in DCP and both safetensors
   layouts; PyTorch loads them (dcp.load, HuggingFaceStorageReader,
   safetensors.torch.load_file) and compares bit-exactly.
With --fixtures DIR it also refreshes the small committed fixtures.
"""
import argparse
import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
import torch.multiprocessing as mp
import torch.nn as nn

try:  # torch >= 2.5
    from torch.distributed.tensor import DTensor
except ImportError:  # torch 2.4
    from torch.distributed._tensor import DTensor
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

try:
    from torch.distributed.checkpoint import HuggingFaceStorageReader, HuggingFaceStorageWriter
except ImportError:
    try:
        from torch.distributed.checkpoint._hf_storage import (  # noqa: F401
            _HuggingFaceStorageReader as HuggingFaceStorageReader,
            _HuggingFaceStorageWriter as HuggingFaceStorageWriter,
        )
    except ImportError:
        HuggingFaceStorageReader = HuggingFaceStorageWriter = None

from torch.distributed.checkpoint.state_dict import get_state_dict


class MLPModule(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(5)
        self.net1 = nn.Linear(10, 16)
        self.relu = nn.ReLU()
        self.net2 = nn.Linear(16, 10)

    def forward(self, x):
        return self.net2(self.relu(self.net1(x)))


class UnevenShardedModel(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(5)
        self.net1 = nn.Linear(5, 10)
        self.relu = nn.ReLU()
        self.net2 = nn.Linear(10, 15)
        self.net3 = nn.Linear(15, 1)

    def forward(self, x):
        return self.net3(self.net2(self.relu(self.net1(x))))


MODELS = {
    "mlp": (MLPModule, {"net1": ColwiseParallel(), "net2": RowwiseParallel()}, 10),
    "uneven": (UnevenShardedModel, {"net1": ColwiseParallel(), "net2": RowwiseParallel(), "net3": ColwiseParallel()}, 5),
}

DTYPE_NAMES = {torch.float32: "float32", torch.float64: "float64", torch.float16: "float16",
               torch.bfloat16: "bfloat16", torch.int64: "int64", torch.int32: "int32", torch.int16: "int16",
               torch.int8: "int8", torch.uint8: "uint8", torch.bool: "bool"}


def flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif isinstance(v, list) and any(isinstance(x, (dict, list, torch.Tensor)) for x in v):
            out.update(flatten({str(i): x for i, x in enumerate(v)}, key + "."))
        else:
            out[key] = v
    return out


def build_state(name, world):
    cls, plan, in_features = MODELS[name]
    mesh = init_device_mesh("cpu", (world,))
    model = parallelize_module(cls(), mesh, plan)
    optim = torch.optim.Adam(model.parameters(), lr=0.25)
    # Deterministic gradients (the same on every world size) give Adam a state to save.
    for p in model.parameters():
        p.grad = torch.ones_like(p) * 0.5
    optim.step()
    msd, osd = get_state_dict(model, optim)
    return {"model": msd, "optim": osd, "extra": {"step": 7, "lr": 0.125, "name": name, "flag": True}}


def dump_expected(state, out_dir, rank):
    flat = flatten(state)
    manifest = []
    for key, v in sorted(flat.items()):
        if isinstance(v, DTensor):
            v = v.full_tensor()
        if rank != 0:
            continue
        if isinstance(v, torch.Tensor):
            v = v.detach().contiguous()
            fname = key.replace("/", "_") + ".bin"
            with open(os.path.join(out_dir, fname), "wb") as f:
                f.write(v.reshape(-1).view(torch.uint8).numpy().tobytes() if v.numel() else b"")
            manifest.append({"key": key, "kind": "tensor", "dtype": DTYPE_NAMES[v.dtype], "shape": list(v.shape),
                             "file": fname})
        elif isinstance(v, bool):
            manifest.append({"key": key, "kind": "bool", "value": v})
        elif isinstance(v, int):
            manifest.append({"key": key, "kind": "int", "value": v})
        elif isinstance(v, float):
            manifest.append({"key": key, "kind": "float", "value": v})
        elif isinstance(v, str):
            manifest.append({"key": key, "kind": "str", "value": v})
    if rank == 0:
        with open(os.path.join(out_dir, "manifest.json"), "w") as f:
            json.dump(manifest, f, indent=1)


def save_worker(rank, world, root, port):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        for name in MODELS:
            state = build_state(name, world)
            tag = f"{name}_ws{world}"
            dcp.save(state, storage_writer=dcp.FileSystemWriter(os.path.join(root, "dcp_" + tag)))
            expected = os.path.join(root, "expected_" + tag)
            os.makedirs(expected, exist_ok=True)
            dist.barrier()
            dump_expected(state, expected, rank)
            if HuggingFaceStorageWriter is not None:
                model_sd = state["model"]
                dcp.save(model_sd, storage_writer=HuggingFaceStorageWriter(
                    os.path.join(root, "hfsharded_" + tag), save_distributed=True))
                if world == 1:
                    writer = HuggingFaceStorageWriter(os.path.join(root, "hffull_" + tag))
                else:
                    writer = HuggingFaceStorageWriter(os.path.join(root, "hffull_" + tag), save_distributed=True,
                                                      enable_consolidation=True)
                dcp.save(model_sd, storage_writer=writer)
                model_expected = os.path.join(root, "expected_model_" + tag)
                os.makedirs(model_expected, exist_ok=True)
                dist.barrier()
                dump_expected(model_sd, model_expected, rank)
            dist.barrier()
    finally:
        dist.destroy_process_group()


def load_expected(expected):
    with open(os.path.join(expected, "manifest.json")) as f:
        manifest = json.load(f)
    out = {}
    inv = {v: k for k, v in DTYPE_NAMES.items()}
    for e in manifest:
        if e["kind"] == "tensor":
            with open(os.path.join(expected, e["file"]), "rb") as f:
                raw = bytearray(f.read())
            t = torch.frombuffer(raw, dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
            out[e["key"]] = t.view(inv[e["dtype"]]).reshape(e["shape"]).clone()
        else:
            out[e["key"]] = e["value"]
    return out


def check_equal(label, got, want):
    for key, w in want.items():
        if key not in got:
            raise SystemExit(f"{label}: key {key} missing")
        g = got[key]
        if isinstance(w, torch.Tensor):
            if g.dtype != w.dtype or g.shape != w.shape or not torch.equal(g.reshape(-1).view(torch.uint8),
                                                                             w.reshape(-1).view(torch.uint8)):
                raise SystemExit(f"{label}: tensor {key} differs")
        elif g != w or type(g) is not type(w):
            raise SystemExit(f"{label}: value {key} differs: {g!r} vs {w!r}")
    print(f"PyTorch loaded {label}: {len(want)} entries match")


def dcp_load_single_process(sd, reader):
    # PyTorch before 2.5 has no no_dist argument: it loads without a process
    # group when none is initialised.
    if "no_dist" in inspect.signature(dcp.load).parameters:
        dcp.load(sd, storage_reader=reader, no_dist=True)
    else:
        dcp.load(sd, storage_reader=reader)


def torch_load_dcp(path, want):
    # Plain tensors of the right shape: DCP loads any sharding into them.
    sd = {k: (torch.full_like(v, -7) if isinstance(v, torch.Tensor) else type(v)()) for k, v in want.items()}
    dcp_load_single_process(sd, dcp.FileSystemReader(path))
    return sd


def torch_load_hf(path, want):
    sd = {k: torch.full_like(v, -7) for k, v in want.items() if isinstance(v, torch.Tensor)}
    dcp_load_single_process(sd, HuggingFaceStorageReader(path))
    return sd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True, help="path to dcpp_interop_tool")
    ap.add_argument("--work", default=None)
    ap.add_argument("--fixtures", default=None, help="refresh the committed fixtures in this directory")
    args = ap.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="dcpp-interop-")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    print(f"torch {torch.__version__}; HuggingFaceStorageWriter: {HuggingFaceStorageWriter is not None}; work {work}")

    port = 29611
    for world in (1, 2, 4):
        mp.spawn(save_worker, args=(world, work, port + world), nprocs=world, join=True)

    def tool(*a):
        r = subprocess.run([args.tool, *map(str, a)], capture_output=True, text=True)
        sys.stdout.write(r.stdout)
        if r.returncode != 0:
            sys.stderr.write(r.stderr)
            raise SystemExit(f"dcpp_interop_tool {' '.join(map(str, a))} failed")

    # PyTorch → dcpp, resharded onto other world sizes.
    reshard = {1: (2, 3), 2: (1, 3, 4), 4: (1, 3)}
    for name in MODELS:
        for world, targets in reshard.items():
            tag = f"{name}_ws{world}"
            for target in targets:
                tool("load", "dcp", f"{work}/dcp_{tag}", f"{work}/expected_{tag}", target)
                if HuggingFaceStorageWriter is not None:
                    tool("load", "hf-sharded", f"{work}/hfsharded_{tag}", f"{work}/expected_model_{tag}", target)
                    tool("load", "hf-full", f"{work}/hffull_{tag}", f"{work}/expected_model_{tag}", target)

    # dcpp → PyTorch.
    for name in MODELS:
        tag = f"{name}_ws2"
        want = load_expected(f"{work}/expected_{tag}")
        tool("save", "dcp", f"{work}/expected_{tag}", f"{work}/dcpp_dcp_{tag}", 3)
        check_equal(f"dcpp's DCP checkpoint of {tag}", torch_load_dcp(f"{work}/dcpp_dcp_{tag}", want), want)
        if HuggingFaceStorageWriter is not None:
            mwant = load_expected(f"{work}/expected_model_{tag}")
            for layout in ("hf-full", "hf-sharded"):
                out = f"{work}/dcpp_{layout}_{tag}"
                tool("save", layout, f"{work}/expected_model_{tag}", out, 3)
                check_equal(f"dcpp's {layout} checkpoint of {tag}", torch_load_hf(out, mwant), mwant)
        from safetensors.torch import load_file
        mwant = load_expected(f"{work}/expected_model_{tag}") if HuggingFaceStorageWriter is not None else None
        if mwant is not None:
            out = f"{work}/dcpp_hf-full_{tag}"
            with open(os.path.join(out, "model.safetensors.index.json")) as f:
                index = json.load(f)
            got = {}
            for fname in sorted(set(index["weight_map"].values())):
                got.update(load_file(os.path.join(out, fname)))
            check_equal(f"safetensors.torch.load_file of dcpp's full layout ({tag})", got, mwant)

    if args.fixtures:
        refresh_fixtures(work, args.fixtures)
    print("interop: all checks passed")


def refresh_fixtures(work, dest):
    os.makedirs(dest, exist_ok=True)
    for sub in ("dcp_mlp_ws2", "expected_mlp_ws2", "dcp_uneven_ws4", "expected_uneven_ws4",
                "hfsharded_uneven_ws2", "hffull_uneven_ws2", "expected_model_uneven_ws2"):
        src = os.path.join(work, sub)
        if os.path.isdir(src):
            shutil.rmtree(os.path.join(dest, sub), ignore_errors=True)
            shutil.copytree(src, os.path.join(dest, sub), ignore=shutil.ignore_patterns("sharded"))
    with open(os.path.join(dest, "TORCH_VERSION"), "w") as f:
        f.write(f"torch {torch.__version__}\nwritten by scripts/interop/run_interop.py --fixtures\n")
    print(f"fixtures refreshed in {dest}")


if __name__ == "__main__":
    main()
