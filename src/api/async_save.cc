// AsyncSaver: stage into reusable page-aligned buffers, save in the background.
#include "dcpp/async_save.h"

#include <chrono>
#include <cstring>
#include <exception>
#include <mutex>
#include <optional>
#include <atomic>
#include <algorithm>
#include <thread>
#include <utility>
#include <vector>

#include "dcpp/error.h"
#include "dcpp/io.h"

namespace dcpp {
namespace {

// A staged copy of one tensor: where it goes in the arena, and the slot of
// the staged state dict (a dict key or a list index) that receives its view.
struct StagedTensor {
  Tensor source;
  std::optional<DTensor> dtensor;  // the original, when the tensor is a DTensor's local piece
  uint64_t offset = 0;
  StateDict dict;  // handles alias: assigning through them edits the staged structure
  std::string key;
  StateList list;
  size_t index = 0;
  bool in_list = false;
};

}  // namespace

struct AsyncSaver::Impl {
  std::thread worker;
  std::atomic<bool> running{false};
  // The promise of the save in flight. The worker only sets it; it is
  // replaced or destroyed on the caller's thread after join(), so the shared
  // state (and an exception in it) is never released on the worker while the
  // caller may still be reading the error it rethrew.
  std::promise<void> promise;
  // One arena for every staged tensor, each at a 4096-aligned offset, so the
  // background writer writes straight from it with direct I/O. Reused while
  // large enough; grown (never shrunk) otherwise.
  AlignedBuffer arena;
  size_t staged_bytes = 0;
  double blocking_seconds = 0;
  // The background save's own communicator, split from `split_from`.
  CommPtr split_from;
  CommPtr background_comm;

  void join() {
    if (worker.joinable()) worker.join();
  }

  // The background save's communicator for a save of `state_dict` with
  // `options`: split once from the communicator that save would use
  // (collective over it).
  void use_communicator(const SaveOptions& options, const StateDict& state_dict) {
    const CommPtr comm = options.comm ? options.comm : infer_communicator(state_dict);
    if (!comm) {
      split_from = nullptr;
      background_comm = nullptr;
      return;
    }
    if (comm == split_from) return;
    background_comm = comm->split(0, comm->rank());
    background_comm->set_timeout(comm->timeout());
    split_from = comm;
  }

  // Grows the arena to `total` bytes (never shrinks it). With `fault_in`,
  // also zeroes it, so that the first copy into it does not pay for page
  // faults.
  void ensure_arena(uint64_t total, bool fault_in) {
    if (arena.capacity() < total) {
      arena = AlignedBuffer();  // free the old one first: peak memory is one arena
      arena = AlignedBuffer(static_cast<size_t>(total), /*zero=*/fault_in);
    }
  }

  // The nested structure of the staged state dict, tensors left as
  // placeholders recorded in `staged` (the arena is sized after this pass).
  StateDict layout(const StateDict& in, std::vector<StagedTensor>& staged, uint64_t& total) {
    StateDict out;
    for (const auto& [key, value] : in) {
      StagedTensor slot;
      slot.dict = out;
      slot.key = key;
      out.set(key, layout_value(value, std::move(slot), staged, total));
    }
    return out;
  }

  StateValue layout_value(const StateValue& v, StagedTensor slot, std::vector<StagedTensor>& staged, uint64_t& total) {
    auto place = [&](const Tensor& t) {
      slot.source = t;
      slot.offset = total;
      total += align_up(std::max<uint64_t>(t.nbytes(), 1), kIoAlignment);
      staged.push_back(std::move(slot));
    };
    if (v.is_tensor()) {
      const Tensor& t = v.as<Tensor>();
      if (t.defined() && !t.is_meta()) place(t);
      return v;  // replaced by its staged view below (meta/undefined: save() reports them by key)
    }
    if (v.is_dtensor()) {
      const DTensor& d = v.as<DTensor>();
      if (d.defined() && !d.is_meta()) {
        slot.dtensor = d;
        place(d.to_local());
      }
      return v;
    }
    if (v.is_dict()) return layout(v.as<StateDict>(), staged, total);
    if (v.is_list()) {
      StateList out;
      const StateList& in = v.as<StateList>();
      for (size_t i = 0; i < in.size(); ++i) {
        StagedTensor child;
        child.list = out;
        child.index = i;
        child.in_list = true;
        out.push_back(layout_value(in[i], std::move(child), staged, total));
      }
      return out;
    }
    if (v.is_stateful()) {
      // save() asks a stateful object for its state; ask now, on the caller's thread.
      return layout(v.as<std::shared_ptr<Stateful>>()->state_dict(), staged, total);
    }
    return v;  // plain values are copied with the structure
  }
};

AsyncSaver::AsyncSaver() : impl_(std::make_unique<Impl>()) {}

AsyncSaver::~AsyncSaver() { impl_->join(); }

void AsyncSaver::wait() { impl_->join(); }

bool AsyncSaver::busy() const { return impl_->running.load(); }

void AsyncSaver::reserve(const StateDict& state_dict, const SaveOptions& options) {
  impl_->join();
  impl_->use_communicator(options, state_dict);
  std::vector<StagedTensor> staged;
  uint64_t total = 0;
  impl_->layout(state_dict, staged, total);
  impl_->ensure_arena(total, true);
}

size_t AsyncSaver::staging_capacity() const { return impl_->arena.capacity(); }

size_t AsyncSaver::staging_bytes() const { return impl_->staged_bytes; }

double AsyncSaver::last_blocking_seconds() const { return impl_->blocking_seconds; }

std::future<void> AsyncSaver::save(const StateDict& state_dict, std::shared_ptr<StorageWriter> writer,
                                   const SaveOptions& options) {
  if (!writer) throw Error(ErrorCode::kInvalidArgument, "async_save: no storage writer");
  const auto start = std::chrono::steady_clock::now();
  // One save in flight: the staging buffers are still being written from.
  impl_->join();

  // The communicator the save would use, and the background's own copy of it.
  impl_->use_communicator(options, state_dict);

  // Stage: lay out, size the arena, copy, and put views of the arena in
  // the staged structure.
  std::vector<StagedTensor> staged;
  uint64_t total = 0;
  StateDict root = impl_->layout(state_dict, staged, total);
  impl_->ensure_arena(total, false);  // the copy below faults the pages in
  impl_->staged_bytes = static_cast<size_t>(total);
  for (StagedTensor& s : staged) {
    Tensor view = Tensor::from_blob(impl_->arena.data() + s.offset, s.source.sizes(), s.source.dtype());
    view.copy_from(s.source);
    StateValue value = s.dtensor ? StateValue(DTensor(view, s.dtensor->device_mesh(), s.dtensor->placements(),
                                                      s.dtensor->shape()))
                                 : StateValue(view);
    if (s.in_list) {
      s.list[s.index] = std::move(value);
    } else {
      s.dict.set(s.key, std::move(value));
    }
  }
  staged.clear();  // drop the references to the caller's tensors

  SaveOptions background = options;
  background.comm = impl_->background_comm;
  impl_->promise = std::promise<void>();
  std::future<void> future = impl_->promise.get_future();
  impl_->running = true;
  impl_->worker = std::thread([impl = impl_.get(), root = std::move(root), writer = std::move(writer),
                               background = std::move(background)]() mutable {
    try {
      dcpp::save(root, *writer, background);
      impl->promise.set_value();
    } catch (...) {
      impl->promise.set_exception(std::current_exception());
    }
    impl->running = false;
  });
  impl_->blocking_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return future;
}

AsyncSaver& thread_async_saver() {
  thread_local AsyncSaver saver;
  return saver;
}

std::future<void> async_save(const StateDict& state_dict, std::shared_ptr<StorageWriter> writer,
                             const SaveOptions& options) {
  return thread_async_saver().save(state_dict, std::move(writer), options);
}

}  // namespace dcpp
