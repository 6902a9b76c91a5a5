#!/usr/bin/env python3
"""PyTorch DCP and safetensors on dcpp's benchmark shapes (`make bench-peers`).

Runs, on the same synthetic transformer-like state (bench/checkpoint_bench.h:
layers × {qkv bf16 Shard(0), out bf16 Shard(1), mlp up fp32 Shard(0) + bias,
mlp down fp32 Shard(1), replicated bias and norm}), the same rank count and
the same directory (so the same disk):

  * PyTorch DCP save and load (FileSystemWriter/Reader, gloo, N processes),
    with its default thread_count and with the best of 1, 2, 4 threads;
  * safetensors save_file / load_file of each rank's local shards;
  * dcpp's own PyTorch storage (dcpp.torch.StorageWriter/Reader: DCP's
    planners, dcpp's writer and reader) on the same DTensor state dict,
    beside PyTorch DCP's FileSystemWriter/Reader (needs the dcpp module on
    PYTHONPATH, as `make bench-peers` sets it; skipped otherwise).

Reads are cold for everyone: every file is fsynced and dropped from the page
cache (posix_fadvise DONTNEED) before each load, and a load's time ends when
its bytes are in memory (safetensors' lazily mapped tensors are touched
inside the timing). DCP and dcpp.torch also load resharded: every 2-d
tensor with its other dimension sharded, 1-d ones replicated. Each rank
samples its resident memory during DCP saves: the extra peak over the state
dict is reported per storage. It runs in --runs rounds.
In a round the peers run in groups (DCP with 1 thread, with each of
--threads, dcpp.torch, then safetensors), and given the dcpp binary (--dcpp), `dcpp
bench --runs 1 --no-reshard --no-async` (raw write and read, save,
same-sharding load) runs before the first group and after each group, on
the same directory. Each peer figure is compared with the mean of the dcpp
runs right before and right after it (the disk's speed drifts by tens of
percent from minute to minute, so figures taken minutes apart would
compare the drift), and the median over the rounds is printed. Output: a
table, and --json FILE.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
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
    """docs/design.md chunk math: c = ceil(S/n); rank r owns [r*c, min((r+1)*c, S))."""
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


class PeakRss:
    """Samples this process's resident set every millisecond while active:
    `extra` is the peak over the resident set at entry, in bytes."""

    def __init__(self):
        import threading
        self.threading = threading

    @staticmethod
    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self):
        self.base = self.peak = self.rss()
        self.stop = self.threading.Event()

        def sample():
            while not self.stop.wait(0.001):
                self.peak = max(self.peak, self.rss())

        self.thread = self.threading.Thread(target=sample, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.peak = max(self.peak, self.rss())
        self.extra = self.peak - self.base


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

    def state(fill, transposed=False):
        """The rank's DTensor state dict; transposed: 2-d tensors sharded on
        their other dimension and 1-d ones replicated (a resharded load)."""
        sd = {}
        for key, shape, dtype, dim in specs(args.layers, args.hidden, args.optimizer):
            if transposed and dim is not None:
                dim = 1 - dim if len(shape) == 2 else None
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

    def cold_load(path, reader, label, transposed):
        if rank == 0:
            drop_cache(path)
        dst = state(0.0, transposed)
        seconds = timed(lambda: dcp.load(dst, storage_reader=reader(path)))
        if not all(bool((v.to_local() == 1.0).all()) for v in dst.values()):
            raise RuntimeError(f"{label} {'resharded ' if transposed else ''}load returned wrong data")
        return seconds

    def dcp_rounds(name, writer, reader, label):
        """`args.runs` dcp.save + cold dcp.load (same sharding, then resharded)
        of `src` through the given storage, and each save's extra peak
        resident memory on this rank."""
        saves, loads, reshards, extra = [], [], [], []
        for run in range(args.runs):
            path = os.path.join(base, f"{name}-{run}")
            with PeakRss() as peak:
                saves.append(timed(lambda: dcp.save(src, storage_writer=writer(path))))
            extra.append(peak.extra)
            if rank == 0:
                fsync_tree(path)
            loads.append(cold_load(path, reader, label, False))
            reshards.append(cold_load(path, reader, label, True))
            dist.barrier()
            if rank == 0:
                shutil.rmtree(path, ignore_errors=True)
        # The worst rank's extra memory.
        extra_all = [None] * world
        dist.all_gather_object(extra_all, max(extra))
        return saves, loads, reshards, [max(extra_all)]

    for threads in args.dcp_threads:
        saves, loads, reshards, extra = dcp_rounds(
            f"dcp-t{threads}", lambda p: dcp.FileSystemWriter(p, thread_count=threads), dcp.FileSystemReader, "PyTorch DCP")
        out[f"dcp_save_t{threads}"] = saves
        out[f"dcp_load_t{threads}"] = loads
        out[f"dcp_reshard_t{threads}"] = reshards
        out[f"dcp_save_extra_rss_t{threads}"] = extra
    if args.dcpp_torch:
        import dcpp.torch
        saves, loads, reshards, extra = dcp_rounds("dcpp-torch", dcpp.torch.StorageWriter, dcpp.torch.StorageReader,
                                                   "dcpp.torch")
        out["dcpp_torch_save"] = saves
        out["dcpp_torch_load"] = loads
        out["dcpp_torch_reshard"] = reshards
        out["dcpp_torch_save_extra_rss"] = extra

    saves, loads = [], []
    for run in range(args.runs if args.safetensors else 0):
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

        def load():
            # load_file may return tensors over a lazy mapping of the file:
            # touch every page so the time includes reading the bytes.
            loaded.update(load_file(f))
            for v in loaded.values():
                flat = v.view(-1)
                if flat.numel():
                    flat[:: max(1, 4096 // v.element_size())].sum()

        loads.append(timed(load))
        if not all(bool((v == 1.0).all()) for v in loaded.values()):
            raise RuntimeError("safetensors load returned wrong data")
        dist.barrier()
        if rank == 0:
            shutil.rmtree(path, ignore_errors=True)
    if args.safetensors:
        out["safetensors_save"] = saves
        out["safetensors_load"] = loads
    if rank == 0:
        results.update(out)
    dist.destroy_process_group()


def run_dcpp(args, directory):
    """One run of dcpp's save, same-sharding load and raw baselines, as JSON."""
    cmd = [args.dcpp, "bench", "--json", "--runs", "1", "--no-reshard", "--no-async", "--ranks", str(args.ranks),
           "--layers", str(args.layers), "--hidden", str(args.hidden), "--dir", directory]
    if args.optimizer:
        cmd.append("--optimizer")
    done = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranks", type=int, default=4)
    ap.add_argument("--layers", type=int, default=19)
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--optimizer", action="store_true")
    ap.add_argument("--dir", default=os.path.join(os.getcwd(), "dcpp-peers-data"))
    ap.add_argument("--runs", type=int, default=3, help="rounds; in each, dcpp runs before and after every group of peer figures")
    ap.add_argument("--threads", type=int, nargs="*", default=[2, 4], help="DCP thread counts tried besides 1 (the default)")
    ap.add_argument("--dcpp", help="the dcpp binary; without it only the peers run")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--no-dcpp-torch", action="store_true", help="skip dcpp.torch (dcpp's storage under PyTorch DCP)")
    args = ap.parse_args()

    import torch
    import torch.multiprocessing as mp

    ckpt_bytes = 0
    for _, shape, dtype, _ in specs(args.layers, args.hidden, args.optimizer):
        n = 1
        for s in shape:
            n *= s
        ckpt_bytes += n * torch.empty((), dtype=dtype).element_size()

    # Rounds. Within a round the peers run in groups (PyTorch DCP with each
    # thread count, then safetensors), and dcpp runs before the first group
    # and after each one: every peer figure is compared with the mean of the
    # dcpp runs right before and right after it, so the disk's drift from
    # minute to minute stays out of the comparison. The median over the
    # rounds is shown.
    dcpp_torch = not args.no_dcpp_torch
    if dcpp_torch:
        try:
            import dcpp.torch  # noqa: F401
        except ImportError as e:
            print(f"dcpp.torch skipped: {e} (put build/python on PYTHONPATH)")
            dcpp_torch = False
    groups = [([t], False, False) for t in sorted(set([1] + args.threads))]
    groups += [([], False, True)] if dcpp_torch else []
    groups += [([], True, False)]
    rounds = []  # per round: {"peers": {key: seconds}, "dcpp": {key: (run before, run after)}, "dcpp_runs": [...]}
    for r in range(args.runs):
        shutil.rmtree(args.dir, ignore_errors=True)
        os.makedirs(args.dir)
        dcpp_dir = os.path.join(args.dir, "dcpp")
        before = run_dcpp(args, dcpp_dir) if args.dcpp else None
        rd = {"peers": {}, "dcpp": {}, "dcpp_runs": [before]}
        for g, (threads, safetensors, with_dcpp_torch) in enumerate(groups):
            peer_args = argparse.Namespace(**vars(args))
            peer_args.runs = 1
            peer_args.dcp_threads = threads
            peer_args.safetensors = safetensors
            peer_args.dcpp_torch = with_dcpp_torch
            manager = mp.Manager()
            results = manager.dict()
            port = 29500 + (os.getpid() + r * len(groups) + g) % 1000
            mp.spawn(worker, args=(args.ranks, peer_args, port, results), nprocs=args.ranks, join=True)
            after = run_dcpp(args, dcpp_dir) if args.dcpp else None
            rd["dcpp_runs"].append(after)
            for k, v in dict(results).items():
                rd["peers"][k] = v[0]
                rd["dcpp"][k] = (before, after)
            manager.shutdown()
            before = after
        rounds.append(rd)
    shutil.rmtree(args.dir, ignore_errors=True)

    def med(values):
        return statistics.median(values)

    peer_secs = {k: med([rd["peers"][k] for rd in rounds]) for k in rounds[0]["peers"]}
    best_t = min((t for t in [1] + args.threads), key=lambda t: peer_secs[f"dcp_save_t{t}"] + peer_secs[f"dcp_load_t{t}"])
    rows = [
        ("PyTorch DCP save (default, 1 thread)", "dcp_save_t1", "save"),
        (f"PyTorch DCP save (best, {best_t} threads)", f"dcp_save_t{best_t}", "save"),
        ("PyTorch DCP load (default)", "dcp_load_t1", "load_same"),
        (f"PyTorch DCP load (after {best_t}-thread save)", f"dcp_load_t{best_t}", "load_same"),
        ("safetensors save", "safetensors_save", "save"),
        ("safetensors load", "safetensors_load", "load_same"),
    ]
    raw_key = {"save": "raw_write", "load_same": "raw_read"}
    print(f"peers: {args.ranks} ranks, {args.layers} layers, hidden {args.hidden}, checkpoint {ckpt_bytes / GiB:.2f} GiB, "
          f"median of {args.runs} rounds, dir {args.dir}")
    def dcpp_gbps(rd, key, figure):
        """dcpp's GiB/s for `figure` around peer figure `key`: the mean of the runs before and after it."""
        return statistics.mean(run["figures"][figure]["gib_per_s"] for run in rd["dcpp"][key])

    if args.dcpp:
        runs = [run for rd in rounds for run in rd["dcpp_runs"]]
        for kind in ("save", "load_same"):
            gbps = [run["figures"][kind]["gib_per_s"] for run in runs]
            raw = [run["figures"][raw_key[kind]]["gib_per_s"] for run in runs]
            print(f"dcpp {kind:39s} {med(gbps):8.3f} GiB/s, raw {med(raw):.3f} GiB/s "
                  f"(medians of the {len(runs)} dcpp runs between the peers' groups)")
    print(f"{'figure':44s} {'seconds':>9s} {'GiB/s':>8s} {'dcpp/peer':>10s} {'peer/raw':>9s}  target  (dcpp/peer by round)")
    report = {"checkpoint_bytes": ckpt_bytes, "ranks": args.ranks, "figures": {},
              "rounds": [{"peers": rd["peers"], "dcpp_runs": rd["dcpp_runs"]} for rd in rounds]}
    for name, key, kind in rows:
        secs = peer_secs[key]
        gbps = ckpt_bytes / GiB / secs
        entry = {"seconds": secs, "gib_per_s": gbps, "samples_key": kind,
                 "samples": [rd["peers"][key] for rd in rounds]}
        ratio = peer_raw = target = by_round = ""
        if args.dcpp:
            # dcpp's GiB/s around each peer figure ÷ the peer's, and the peer's ÷ the raw figure around it.
            ratios = [dcpp_gbps(rd, key, kind) / (ckpt_bytes / GiB / rd["peers"][key]) for rd in rounds]
            of_raw = [(ckpt_bytes / GiB / rd["peers"][key]) / dcpp_gbps(rd, key, raw_key[kind]) for rd in rounds]
            r, pr = med(ratios), med(of_raw)
            need = 2.0 if pr < 0.5 else 1.0
            ratio, peer_raw = f"{r:.2f}", f"{pr:.2f}"
            target = f">= {need:.0f}x: {'met' if r >= need else 'NOT met'}"
            by_round = "(" + ", ".join(f"{x:.2f}" for x in ratios) + ")"
            entry.update({"dcpp_over_peer": r, "dcpp_over_peer_by_round": ratios, "peer_over_raw": pr})
        print(f"{name:44s} {secs:9.3f} {gbps:8.3f} {ratio:>10s} {peer_raw:>9s}  {target}  {by_round}")
        report["figures"][name] = entry
    if dcpp_torch:
        # The same DCP calls, state dict and ranks with either storage: PyTorch
        # DCP's time ÷ dcpp.torch's in each round (groups run minutes apart
        # at most), median over rounds; reads cold for both.
        print(f"dcpp.torch (DCP + dcpp's StorageWriter/Reader) vs PyTorch DCP FileSystemWriter/Reader, "
              f"{args.ranks} ranks, cold reads:")
        print(f"{'figure':44s} {'seconds':>9s} {'GiB/s':>8s} {'DCP s':>9s} {'DCP/dcpp':>9s}  target  (by round)")
        for name, mine, theirs, need in (
                ("dcpp.torch save", "dcpp_torch_save", "dcp_save_t1", 1.3),
                (f"dcpp.torch save (DCP best, {best_t} threads)", "dcpp_torch_save", f"dcp_save_t{best_t}", 1.3),
                ("dcpp.torch load", "dcpp_torch_load", "dcp_load_t1", 2.0),
                ("dcpp.torch load resharded", "dcpp_torch_reshard", "dcp_reshard_t1", 2.0)):
            secs = peer_secs[mine]
            ratios = [rd["peers"][theirs] / rd["peers"][mine] for rd in rounds]
            r = med(ratios)
            print(f"{name:44s} {secs:9.3f} {ckpt_bytes / GiB / secs:8.3f} {peer_secs[theirs]:9.3f} {r:9.2f}  "
                  f">= {need}x: {'met' if r >= need else 'NOT met'}  (" + ", ".join(f"{x:.2f}" for x in ratios) + ")")
            report["figures"][name] = {"seconds": secs, "gib_per_s": ckpt_bytes / GiB / secs,
                                       "samples": [rd["peers"][mine] for rd in rounds],
                                       "pytorch_dcp_over_dcpp_torch": r,
                                       "pytorch_dcp_over_dcpp_torch_by_round": ratios}
        if args.dcpp:
            # Against the machine and the C++ API: the dcpp runs right before
            # and after the dcpp.torch group, on the same bytes and disk.
            torch_gbps = [ckpt_bytes / GiB / rd["peers"]["dcpp_torch_save"] for rd in rounds]
            of_raw = med([g / dcpp_gbps(rd, "dcpp_torch_save", "raw_write") for g, rd in zip(torch_gbps, rounds)])
            overhead = med([dcpp_gbps(rd, "dcpp_torch_save", "save") / g - 1 for g, rd in zip(torch_gbps, rounds)])
            print(f"{'dcpp.torch save / raw direct write':44s} {of_raw:9.2f}  >= 0.85: {'met' if of_raw >= 0.85 else 'NOT met'}")
            print(f"{'dcpp.torch save time over C++ save':44s} {overhead * 100:8.1f}%  <= 10%: "
                  f"{'met' if overhead <= 0.10 else 'NOT met'}")
            report["figures"]["dcpp.torch save / raw write"] = of_raw
            report["figures"]["dcpp.torch save overhead over C++"] = overhead
        mib = 1024.0 ** 2
        staging = 2 * 8 * mib  # StorageWriter's default: 2 writer threads × 8 MiB staging
        for name, key in (("dcpp.torch", "dcpp_torch_save_extra_rss"), ("PyTorch DCP", "dcp_save_extra_rss_t1")):
            extra = max(rd["peers"][key] for rd in rounds)
            line = f"{name + ' save: extra peak resident memory':44s} {extra / mib:8.1f} MiB (worst rank, worst round)"
            if key.startswith("dcpp"):
                line += f"  <= 256 MiB + {staging / mib:.0f} MiB staging: {'met' if extra <= 256 * mib + staging else 'NOT met'}"
            print(line)
            report["figures"][f"{name} save extra peak rss"] = extra
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
