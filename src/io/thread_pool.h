// ThreadPool — a fixed set of worker threads for parallel I/O and checksums.
//
// submit() queues a callable and returns a std::future of its result; an
// exception thrown by the callable is stored in the future and rethrown by
// get(), so errors propagate to whoever waits. The pool owns its threads;
// the destructor finishes every queued task, then joins. Thread-safety:
// submit() may be called from any thread, including from inside a task
// (but a task must not wait on a task queued behind it in a one-thread pool).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <queue>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace dcpp {

class ThreadPool {
 public:
  // `threads` == 0 means std::thread::hardware_concurrency() (at least 1).
  explicit ThreadPool(size_t threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  size_t size() const { return workers_.size(); }

  template <typename F>
  auto submit(F&& fn) -> std::future<std::invoke_result_t<std::decay_t<F>>> {
    using R = std::invoke_result_t<std::decay_t<F>>;
    // packaged_task is move-only and std::function needs copyable targets,
    // hence the shared_ptr.
    auto task = std::make_shared<std::packaged_task<R()>>(std::forward<F>(fn));
    std::future<R> future = task->get_future();
    enqueue([task] { (*task)(); });
    return future;
  }

 private:
  void enqueue(std::function<void()> job);
  void run();

  std::vector<std::thread> workers_;
  std::queue<std::function<void()>> jobs_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;
};

}  // namespace dcpp
