// async_save: checkpoint while training goes on (PyTorch's dcp.async_save).
//
// AsyncSaver::save copies ("stages") every tensor of the state dict into
// host buffers the saver owns and reuses from one save to the next, then
// starts the ordinary collective save() of the staged copy on a background
// thread and returns a future. The caller is blocked only for the copy: as
// soon as save() returns, the caller's tensors may change; the checkpoint
// holds the values they had at the call. A second save() first waits for the
// one in flight (its outcome stays in its own future). Errors — of any rank,
// in any phase — surface on the future (get() throws the dcpp::Error that a
// synchronous save would have thrown).
//
// Collectives: the background save runs its collectives on a communicator of
// its own, split once (collectively, on the calling thread) from the save's
// communicator, so the caller may keep using its communicator — all-reduces
// of training — while the save writes. Every rank must call save() together,
// as for a synchronous save.
//
// Ownership: the saver owns its staging buffers and background thread; the
// writer is shared with the background save until it finishes. The
// destructor waits for the save in flight. Thread-safety: one saver per rank;
// its methods are called from that rank's thread.
#pragma once

#include <cstddef>
#include <future>
#include <memory>
#include <string>

#include "dcpp/checkpoint.h"
#include "dcpp/fs_storage.h"
#include "dcpp/state_dict.h"
#include "dcpp/storage.h"

namespace dcpp {

class AsyncSaver {
 public:
  AsyncSaver();
  ~AsyncSaver();
  AsyncSaver(const AsyncSaver&) = delete;
  AsyncSaver& operator=(const AsyncSaver&) = delete;

  // Waits for the previous save, stages `state_dict`, starts writing it
  // through `writer` in the background and returns. Stateful objects are
  // asked for their state on the calling thread. Throws (on the calling
  // thread) only if staging fails; everything later goes to the future.
  std::future<void> save(const StateDict& state_dict, std::shared_ptr<StorageWriter> writer,
                         const SaveOptions& options = {});
  // The native format at `path`.
  std::future<void> save(const StateDict& state_dict, const std::string& path, const SaveOptions& options = {},
                         FileSystemWriterOptions writer_options = {}) {
    return save(state_dict, std::make_shared<FileSystemWriter>(path, std::move(writer_options)), options);
  }

  // Optional, before the first save: sizes the staging buffers for
  // `state_dict` and faults their pages in, and splits the background
  // communicator (collective over the save's communicator, like save()), so
  // that the first save() also blocks for no more than a copy. Stateful
  // objects are asked for their state. Later saves of a larger state dict
  // grow the buffers again.
  void reserve(const StateDict& state_dict, const SaveOptions& options = {});

  // Waits until no save is in flight (never throws: errors are in the futures).
  void wait();
  // True while a background save is running.
  bool busy() const;

  // Bytes of the staging buffers (the tensors of the last staged state dict,
  // each rounded up to 4096) and how long the last save() blocked its caller.
  size_t staging_bytes() const;
  // Bytes allocated for staging (reserve() or the largest save so far).
  size_t staging_capacity() const;
  double last_blocking_seconds() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A saver per calling thread (per rank of the thread backend), created on
// first use: the functional form of AsyncSaver::save.
std::future<void> async_save(const StateDict& state_dict, std::shared_ptr<StorageWriter> writer,
                             const SaveOptions& options = {});
AsyncSaver& thread_async_saver();
inline std::future<void> async_save(const StateDict& state_dict, const std::string& path,
                                    const SaveOptions& options = {}) {
  return thread_async_saver().save(state_dict, path, options);
}

}  // namespace dcpp
