"""dcpp as the storage engine of torch.distributed.checkpoint (DCP).

`StorageWriter` and `StorageReader` implement DCP's storage interfaces, so
DCP's own planners, state dicts (DTensor, FSDP2, tensor parallel),
`dcp.save`, `dcp.async_save` and `dcp.load` are used unchanged, while the
checkpoint on disk is a native dcpp checkpoint (docs/format.md): C++
`dcpp::load`, `dcpp.CheckpointReader` and `dcpp verify` read it, and DCP loads
checkpoints that dcpp wrote from C++.

    import torch.distributed.checkpoint as dcp
    import dcpp.torch
    dcp.save(state_dict, storage_writer=dcpp.torch.StorageWriter("/ckpt/step-100"))
    dcp.load(state_dict, storage_reader=dcpp.torch.StorageReader("/ckpt/step-100"))

Python only translates between DCP's plans and metadata and dcpp's: each
rank's items and zero-copy DLPack views of its tensors go to the C++
FileSystemWriter (direct I/O, writer threads, per-block XXH3 checksums,
staging directory swapped in at commit), and read items with their
destinations to the C++ FileSystemReader (coalesced direct reads, every
block touched verified), with the GIL released. Non-tensor items (DCP's
pickled bytes) are stored as bytes values. A failure raises `dcpp.Error`
(a RuntimeError with `.code`), naming key and file; inside a distributed
save or load DCP reports it in its CheckpointException.

CUDA tensors are copied to pinned host memory before writing and back after
reading (a simple path, not overlapped with I/O).

This module imports torch; `import dcpp` does not.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import math
import os
from typing import Any, List, Optional, Tuple

import torch
from torch.futures import Future
from torch.distributed.checkpoint import metadata as _md
from torch.distributed.checkpoint import planner as _planner
from torch.distributed.checkpoint import storage as _storage
from torch.distributed.checkpoint.staging import BlockingAsyncStager

try:  # torch >= 2.5
    from torch.distributed.tensor import DTensor
except ImportError:  # torch 2.4
    from torch.distributed._tensor import DTensor

from . import _core

__all__ = ["ChunkLocation", "StorageReader", "StorageWriter"]


@dataclasses.dataclass(frozen=True)
class ChunkLocation:
    """Where a rank wrote one item: dcpp's StorageLocation, carried to the
    coordinator in WriteResult.storage_data (picklable)."""

    file: str
    byte_offset: int
    byte_length: int
    block_checksums: Tuple[int, ...]
    sizes: Tuple[int, ...]  # the chunk's sizes (tensors); () for values


@dataclasses.dataclass(frozen=True)
class _RankSlot:
    """A final plan's place in the save, stamped by the coordinator: which
    data file the rank writes, and of how many ranks."""

    rank: int
    world_size: int


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


_FLOAT8 = {getattr(torch, n) for n in ("float8_e4m3fn", "float8_e5m2") if hasattr(torch, n)}


def _exportable(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor as DLPack can carry it: float8 (no DLPack code) as a uint8
    view of the same bytes, which the C++ side gives its dtype back."""
    return tensor.view(torch.uint8) if tensor.dtype in _FLOAT8 else tensor


def _host(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` itself on the CPU; else a pinned host copy (untested here: no GPU)."""
    tensor = tensor.detach()
    if tensor.device.type == "cpu":
        return tensor
    host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=torch.cuda.is_available())
    host.copy_(tensor)
    return host


def _snapshot(obj: Any) -> Any:
    """A copy of a state dict that shares no memory with it."""
    if isinstance(obj, dict):
        return type(obj)((k, _snapshot(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)) and type(obj) in (list, tuple):
        return type(obj)(_snapshot(v) for v in obj)
    if isinstance(obj, DTensor):
        return DTensor.from_local(obj.to_local().detach().clone(), obj.device_mesh, obj.placements,
                                  run_check=False, shape=obj.shape, stride=obj.stride())
    if type(obj) is torch.Tensor or isinstance(obj, torch.nn.Parameter):
        return obj.detach().clone()
    return copy.deepcopy(obj)


def _done(value: Any) -> Future:
    future: Future = Future()  # DCP waits on torch futures
    future.set_result(value)
    return future


def _path(checkpoint_id: Any) -> str:
    if not isinstance(checkpoint_id, (str, os.PathLike)):
        raise TypeError(f"a dcpp checkpoint is a directory path, not {type(checkpoint_id).__name__}")
    return os.fspath(checkpoint_id)


class StorageWriter(_storage.StorageWriter, BlockingAsyncStager):
    """Writes a native dcpp checkpoint at `path` for `dcp.save` / `dcp.async_save`.

    overwrite: replace a complete checkpoint already at `path` (atomically, at
    commit); False refuses before anything is written. block_size: checksum
    block size. io_threads: writer threads per rank. direct_io: O_DIRECT where
    the file system allows it.

    It is also the stager of `dcp.async_save` (as PyTorch's FileSystemWriter
    is): `stage` copies every tensor and value before async_save returns, so
    the caller may change its state right away. torch's own staging copies
    only what is not on the CPU in older versions (2.4), hence a copy of
    its own: each tensor is cloned on its device (DTensors keep mesh and
    placements), values are deep-copied.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        overwrite: bool = True,
        block_size: int = 1 << 20,
        io_threads: int = 2,
        direct_io: bool = True,
    ) -> None:
        _storage.StorageWriter.__init__(self)
        BlockingAsyncStager.__init__(self)
        self.path = _path(path)
        self.overwrite = overwrite
        self.block_size = block_size
        self.io_threads = io_threads
        self.direct_io = direct_io
        self.is_coordinator = False
        self._native: Optional[_core.RankWriter] = None

    def _writer(self) -> _core.RankWriter:
        if self._native is None:
            self._native = _core.RankWriter(
                self.path, self.overwrite, self.block_size, self.io_threads, self.direct_io
            )
        return self._native

    def reset(self, checkpoint_id: str | os.PathLike | None = None) -> None:
        if checkpoint_id is not None:
            self.path = _path(checkpoint_id)
        self._native = None

    def stage(self, state_dict: Any) -> Any:
        return _snapshot(state_dict)

    def set_up_storage_writer(self, is_coordinator: bool, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("use_collectives") is False:
            raise ValueError(
                "dcpp.torch.StorageWriter writes one checkpoint from all ranks together and needs "
                "DCP's collectives (use_collectives=True)"
            )
        self.is_coordinator = is_coordinator

    def prepare_local_plan(self, plan: _planner.SavePlan) -> _planner.SavePlan:
        return plan

    def prepare_global_plan(self, plans: List[_planner.SavePlan]) -> List[_planner.SavePlan]:
        # Runs on the coordinator before the plans are scattered, so the
        # staging directory exists before any rank writes into it.
        world = len(plans)
        writer = self._writer()
        writer.set_up(0, world, True)
        writer.prepare()
        return [dataclasses.replace(p, storage_data=_RankSlot(i, world)) for i, p in enumerate(plans)]

    def write_data(self, plan: _planner.SavePlan, planner: _planner.SavePlanner) -> Future:
        slot = plan.storage_data
        if not isinstance(slot, _RankSlot):
            raise RuntimeError("dcpp.torch.StorageWriter: the final plan carries no rank slot from prepare_global_plan")
        writer = self._writer()
        writer.set_up(slot.rank, slot.world_size, self.is_coordinator)
        tensor_items, tensors, value_items, values = [], [], [], []
        for item in plan.items:
            if item.type == _planner.WriteItemType.BYTE_IO:
                data = planner.resolve_data(item)
                value_items.append(item)
                values.append((item.index.fqn, data.getvalue() if isinstance(data, io.BytesIO) else bytes(data)))
                continue
            td = item.tensor_data
            tensor = _host(planner.resolve_data(item))
            tensor_items.append(item)
            tensors.append(
                (
                    item.index.fqn,
                    list(td.chunk.offsets),
                    list(td.chunk.sizes),
                    list(td.size),
                    _dtype_name(td.properties.dtype),
                    _exportable(tensor),
                )
            )
        try:
            locations = writer.write(tensors, values)
        except BaseException:
            writer.abort()
            raise
        results = []
        for item, loc in zip(tensor_items + value_items, locations):
            sizes = tuple(item.tensor_data.chunk.sizes) if item.tensor_data is not None else ()
            file, offset, length, checksums = loc
            results.append(
                _storage.WriteResult(
                    index=item.index,
                    size_in_bytes=length,
                    storage_data=ChunkLocation(file, offset, length, tuple(checksums), sizes),
                )
            )
        return _done(results)

    def finish(self, metadata: _md.Metadata, results: List[List[_storage.WriteResult]]) -> None:
        tensors, values = {}, []
        for fqn, md in metadata.state_dict_metadata.items():
            if isinstance(md, _md.TensorStorageMetadata):
                tensors[fqn] = (_dtype_name(md.properties.dtype), list(md.size))
            else:
                values.append(fqn)
        paths = {}
        if isinstance(metadata.planner_data, dict):
            for fqn, p in metadata.planner_data.items():
                if isinstance(p, (tuple, list)):
                    paths[fqn] = list(p)
        per_rank = []
        for rank_results in results:
            rows = []
            for r in rank_results:
                loc = r.storage_data
                is_tensor = r.index.fqn in tensors
                if is_tensor and not loc.file:
                    continue  # an empty shard: the metadata keeps the tensor's dtype and shape
                offsets = list(r.index.offset) if is_tensor else []
                rows.append(
                    (r.index.fqn, is_tensor, offsets, list(loc.sizes),
                     (loc.file, loc.byte_offset, loc.byte_length, list(loc.block_checksums)))
                )
            per_rank.append(rows)
        writer = self._writer()
        try:
            writer.finish(tensors, values, paths, per_rank)
        except BaseException:
            writer.abort()
            raise

    def storage_meta(self) -> Optional[Any]:
        storage_meta = getattr(_md, "StorageMeta", None)
        return storage_meta(checkpoint_id=self.path) if storage_meta is not None else None

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: str | os.PathLike) -> bool:
        return isinstance(checkpoint_id, (str, os.PathLike))


class StorageReader(_storage.StorageReader):
    """Reads the native dcpp checkpoint at `path` for `dcp.load`.

    io_threads: reader threads per rank. direct_io: True reads with O_DIRECT
    where the file system allows it (cold reads, no page cache), False
    through the page cache; None (the default) decides per rank from the
    global load plan: O_DIRECT unless over a quarter of the elements a rank
    reads lie in saved chunks other ranks read too (a resharded load). DCP
    gives the storage no communicator to share such reads through, so they
    go through the page cache, where the ranks of one host read them from
    the disk once.
    """

    # Share of a rank's elements in chunks other ranks also read above which
    # the rank reads through the page cache (direct_io=None).
    SHARED_READ_FRACTION = 0.25

    def __init__(self, path: str | os.PathLike, *, io_threads: int = 4, direct_io: Optional[bool] = None) -> None:
        super().__init__()
        self.path = _path(path)
        self.io_threads = io_threads
        self.direct_io = direct_io
        self.rank = 0
        self._native: Optional[_core.RankReader] = None
        self._native_direct = True
        self._chunk_index: dict = {}

    def _reader(self, direct_io: bool = True) -> _core.RankReader:
        if self._native is None or self._native_direct != direct_io:
            self._native = _core.RankReader(self.path, self.rank, self.io_threads, direct_io)
            self._native_direct = direct_io
        return self._native

    def reset(self, checkpoint_id: str | os.PathLike | None = None) -> None:
        if checkpoint_id is not None:
            self.path = _path(checkpoint_id)
        self._native = None
        self._chunk_index = {}

    def read_metadata(self, *args: Any, **kwargs: Any) -> _md.Metadata:
        native = self._reader().metadata()
        state_dict_metadata: dict = {}
        self._chunk_index = {}
        for fqn, (dtype, shape, chunks) in native["tensors"].items():
            state_dict_metadata[fqn] = _md.TensorStorageMetadata(
                properties=_md.TensorProperties(dtype=getattr(torch, dtype)),
                size=torch.Size(shape),
                chunks=[_md.ChunkStorageMetadata(offsets=torch.Size(o), sizes=torch.Size(s)) for o, s in chunks],
            )
            for i, (offsets, _) in enumerate(chunks):
                self._chunk_index[(fqn, tuple(offsets))] = i
        for fqn in native["values"]:
            state_dict_metadata[fqn] = _md.BytesStorageMetadata()
        planner_data = {fqn: tuple(p) for fqn, p in native["paths"].items()}
        return _md.Metadata(state_dict_metadata=state_dict_metadata, planner_data=planner_data, storage_data={})

    def set_up_storage_reader(self, metadata: _md.Metadata, is_coordinator: bool, *args: Any, **kwargs: Any) -> None:
        rank = kwargs.get("rank")
        if rank is not None and rank != self.rank:
            self.rank = rank  # only names the rank in error messages
            self._native = None
        if not self._chunk_index:
            self.read_metadata()

    def prepare_local_plan(self, plan: _planner.LoadPlan) -> _planner.LoadPlan:
        return plan

    def prepare_global_plan(self, plans: List[_planner.LoadPlan]) -> List[_planner.LoadPlan]:
        # Which ranks read each saved chunk, then each rank's share of
        # elements in chunks that several ranks read: the verdict travels in
        # the rank's plan (True: read through the page cache).
        readers: dict = {}
        for rank, plan in enumerate(plans):
            for item in plan.items:
                if item.type != _planner.LoadItemType.BYTE_IO:
                    readers.setdefault((item.storage_index.fqn, tuple(item.storage_index.offset)), set()).add(rank)
        verdicts = []
        for rank, plan in enumerate(plans):
            total = shared = 0
            for item in plan.items:
                if item.type == _planner.LoadItemType.BYTE_IO:
                    continue
                n = math.prod(item.lengths)
                total += n
                if len(readers[(item.storage_index.fqn, tuple(item.storage_index.offset))]) > 1:
                    shared += n
            verdicts.append(total > 0 and shared > self.SHARED_READ_FRACTION * total)
        return [dataclasses.replace(p, storage_data=v) for p, v in zip(plans, verdicts)]

    def read_data(self, plan: _planner.LoadPlan, planner: _planner.LoadPlanner) -> Future:
        shared = plan.storage_data is True
        reader = self._reader(self.direct_io if self.direct_io is not None else not shared)
        items, hosts, targets, value_items = [], [], [], []
        for item in plan.items:
            if item.type == _planner.LoadItemType.BYTE_IO:
                value_items.append(item)
                continue
            fqn = item.storage_index.fqn
            chunk = self._chunk_index.get((fqn, tuple(item.storage_index.offset)))
            if chunk is None:
                raise _core.Error(
                    f"checkpoint {self.path!r} has no chunk of '{fqn}' at offsets {list(item.storage_index.offset)}"
                )
            resolved = planner.resolve_tensor(item)
            target = resolved.detach()
            host = target if target.device.type == "cpu" else torch.empty(
                target.shape, dtype=target.dtype, pin_memory=torch.cuda.is_available()
            )
            float8 = _dtype_name(host.dtype) if host.dtype in _FLOAT8 else None
            items.append((fqn, chunk, list(item.storage_offsets), list(item.lengths), float8))
            hosts.append(host)
            targets.append((item, resolved, target))
        reader.read(items, [_exportable(h) for h in hosts])
        for (item, resolved, target), host in zip(targets, hosts):
            if host is not target:
                target.copy_(host)
            planner.commit_tensor(item, resolved)
        if value_items:
            stored = reader.read_values([item.storage_index.fqn for item in value_items])
            for item, value in zip(value_items, stored):
                if not isinstance(value, bytes):
                    # A value written by dcpp itself (int, float, bool, str):
                    # DCP's planners unpickle what they load.
                    buffer = io.BytesIO()
                    torch.save(value, buffer)
                    value = buffer.getvalue()
                planner.load_bytes(item, io.BytesIO(value))
        return _done(None)

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: str | os.PathLike) -> bool:
        if not isinstance(checkpoint_id, (str, os.PathLike)):
            return False
        return os.path.isfile(os.path.join(os.fspath(checkpoint_id), "dcpp.metadata"))
