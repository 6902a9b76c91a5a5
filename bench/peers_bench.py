#!/usr/bin/env python3
"""PyTorch DCP and safetensors on dcpp's benchmark shapes (`make bench-peers`).

Runs, on the same synthetic transformer-like state (bench/checkpoint_bench.h:
layers × {qkv bf16 Shard(0), out bf16 Shard(1), mlp up fp32 Shard(0) + bias,
mlp down fp32 Shard(1), replicated bias and norm}), the same rank count and
the same directory (so the same disk):

  * PyTorch DCP save and load (FileSystemWriter/Reader, gloo, N processes),
    with its default thread_count and with the best of 1, 2, 4 threads;
  * safetensors save_file / load_file of each rank's local shards.

Reads are cold for everyone: every file is fsynced and dropped from the page
cache (posix_fadvise DONTNEED) before each load. Each figure is the median of
--runs. Given dcpp's `dcpp bench --json` output (--dcpp-json), prints
dcpp's throughput ratio to each peer's. Output: a table, and --json FILE.
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import time

GiB = 1024.0 ** 3


def specs(layers, hidden, optimizer):
    import torch
    h = hidden
    out = []
    for l in range(layers):
        p = f"model.layers.{l}."
        base = [
            (p + "attn.qkv.weight", (3 * h, h), torch.bfloat16, 0),
            (p + "attn.out.weight", (h, h), torch.bfloat16, 1),
            (p + "mlp.up.weight", (4 * h, h), torch.float32, 0),
            (p + "mlp.up.bias", (4 * h,), torch.float32, 0),
            (p + "mlp.down.weight", (h, 4 * h), torch.float32, 1),
            (p + "mlp.down.bias", (h,), torch.float32, None),
            (p + "norm.weight", (h,), torch.float32, None),
        ]
        for key, shape, dtype, dim in base:
            out.append((key, shape, dtype, dim))
            if optimizer:
                for s in ("exp_avg", "exp_avg_sq"):
                    out.append((f"optim.state.{key}.{s}", shape, torch.float32, dim))
    return out


def local_piece(shape, dim, world, rank):
    """DESIGN.md chunk math: c = ceil(S/n); rank r owns [r*c, min((r+1)*c, S))."""
    if dim is None:
        return shape, (0,) * len(shape)
    s = shape[dim]
    c = (s + world - 1) // world
    lo, hi = min(rank * c, s), min((rank + 1) * c, s)
    local = list(shape)
    local[dim] = hi - lo
    off = [0] * len(shape)
    off[dim] = lo
    return tuple(local), tuple(off)


def drop_cache(path):
    for root, _, files in os.walk(path):
        for f in files:
            fd = os.open(os.path.join(root, f), os.O_RDONLY)
            try:
                os.fdatasync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def fsync_tree(path):
    for root, _, files in os.walk(path):
        for f in files:
            fd = os.open(os.path.join(root, f), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def worker(rank, world, args, port, results):
    import torch
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor, Replicate, Shard
    from safetensors.torch import load_file, save_file

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    mesh = init_device_mesh("cpu", (world,))

    def state(fill):
        sd = {}
        for key, shape, dtype, dim in specs(args.layers, args.hidden, args.optimizer):
            lshape, _ = local_piece(shape, dim, world, rank)
            t = torch.full(lshape, fill, dtype=dtype)
            placement = [Replicate()] if dim is None else [Shard(dim)]
            sd[key] = DTensor.from_local(t, mesh, placement, run_check=False, shape=torch.Size(shape),
                                         stride=torch.empty(shape, device="meta").stride())
        return sd

    def timed(fn):
        dist.barrier()
        t0 = time.perf_counter()
        fn()
        dist.barrier()
        return time.perf_counter() - t0

    src = state(1.0)
    out = {}
    base = args.dir
    for threads in sorted(set([1] + args.threads)):
        saves, loads = [], []
        for run in range(args.runs):
            path = os.path.join(base, f"dcp-t{threads}-{run}")
            saves.append(timed(lambda: dcp.save(src, storage_writer=dcp.FileSystemWriter(path, thread_count=threads))))
            if rank == 0:
                fsync_tree(path)
                drop_cache(path)
            dst = state(0.0)
            loads.append(timed(lambda: dcp.load(dst, storage_reader=dcp.FileSystemReader(path))))
            ok = all(bool((v.to_local() == 1.0).all()) for v in dst.values())
            if not ok:
                raise RuntimeError("PyTorch DCP load returned wrong data")
            del dst
            dist.barrier()
            if rank == 0:
                shutil.rmtree(path, ignore_errors=True)
        out[f"dcp_save_t{threads}"] = saves
        out[f"dcp_load_t{threads}"] = loads

    saves, loads = [], []
    for run in range(args.runs):
        path = os.path.join(base, f"st-{run}")
        os.makedirs(path, exist_ok=True)
        f = os.path.join(path, f"rank-{rank}.safetensors")
        local = {k: v.to_local().contiguous() for k, v in src.items()}

        def save():
            save_file(local, f)
            fd = os.open(f, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)

        saves.append(timed(save))
        drop_cache(path)
        loaded = {}
        loads.append(timed(lambda: loaded.update(load_file(f))))
        if not all(bool((v == 1.0).all()) for v in loaded.values()):
            raise RuntimeError("safetensors load returned wrong data")
        dist.barrier()
        if rank == 0:
            shutil.rmtree(path, ignore_errors=True)
    out["safetensors_save"] = saves
    out["safetensors_load"] = loads
    if rank == 0:
        results.update(out)
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranks", type=int, default=4)
    ap.add_argument("--layers", type=int, default=19)
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--optimizer", action="store_true")
    ap.add_argument("--dir", default=os.path.join(os.getcwd(), "dcpp-peers-data"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="*", default=[2, 4], help="DCP thread counts tried besides 1 (the default)")
    ap.add_argument("--dcpp-json", help="dcpp bench --json output of the same shapes")
    ap.add_argument("--json", help="write the peers' figures here")
    args = ap.parse_args()

    import torch
    import torch.multiprocessing as mp

    ckpt_bytes = 0
    for _, shape, dtype, _ in specs(args.layers, args.hidden, args.optimizer):
        n = 1
        for s in shape:
            n *= s
        ckpt_bytes += n * torch.empty((), dtype=dtype).element_size()

    shutil.rmtree(args.dir, ignore_errors=True)
    os.makedirs(args.dir)
    manager = mp.Manager()
    results = manager.dict()
    port = 29500 + os.getpid() % 1000
    mp.spawn(worker, args=(args.ranks, args, port, results), nprocs=args.ranks, join=True)
    shutil.rmtree(args.dir, ignore_errors=True)
    res = dict(results)

    fig = {k: statistics.median(v) for k, v in res.items()}
    best_t = min((t for t in [1] + args.threads), key=lambda t: fig[f"dcp_save_t{t}"] + fig[f"dcp_load_t{t}"])
    rows = [
        ("PyTorch DCP save (default, 1 thread)", fig["dcp_save_t1"], "save"),
        (f"PyTorch DCP save (best, {best_t} threads)", fig[f"dcp_save_t{best_t}"], "save"),
        ("PyTorch DCP load (default)", fig["dcp_load_t1"], "load_same"),
        (f"PyTorch DCP load (after {best_t}-thread save)", fig[f"dcp_load_t{best_t}"], "load_same"),
        ("safetensors save", fig["safetensors_save"], "save"),
        ("safetensors load", fig["safetensors_load"], "load_same"),
    ]
    dcpp = None
    if args.dcpp_json:
        with open(args.dcpp_json) as f:
            dcpp = json.load(f)
    raw = None
    if dcpp:
        raw = {"save": dcpp["figures"]["raw_write"]["gib_per_s"], "load_same": dcpp["figures"]["raw_read"]["gib_per_s"]}
    print(f"peers: {args.ranks} ranks, {args.layers} layers, hidden {args.hidden}, checkpoint {ckpt_bytes / GiB:.2f} GiB, "
          f"median of {args.runs}, dir {args.dir}")
    print(f"{'figure':44s} {'seconds':>9s} {'GiB/s':>8s} {'dcpp/peer':>10s} {'peer/raw':>9s}  target")
    report = {"checkpoint_bytes": ckpt_bytes, "ranks": args.ranks, "figures": {}}
    for name, secs, kind in rows:
        gbps = ckpt_bytes / GiB / secs
        ratio = ""
        target = ""
        if dcpp:
            d = dcpp["figures"][kind]["gib_per_s"]
            r = d / gbps
            ratio = f"{r:.2f}"
            need = 2.0 if gbps < 0.5 * raw[kind] else 1.0
            target = f">= {need:.0f}x: {'met' if r >= need else 'NOT met'}"
        peer_raw = f"{gbps / raw[kind]:.2f}" if raw else ""
        print(f"{name:44s} {secs:9.3f} {gbps:8.3f} {ratio:>10s} {peer_raw:>9s}  {target}")
        report["figures"][name] = {"seconds": secs, "gib_per_s": gbps, "samples_key": kind}
    report["samples"] = res
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
