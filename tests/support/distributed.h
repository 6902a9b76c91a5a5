// Test support: run one test body on several world sizes of the thread
// backend, or on the MPI world in the *_mpi test binaries, and print seeds.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>

#include "dcpp/comm.h"

namespace dcpp::testing {

// The seed of a random test case: DCPP_TEST_SEED if set, else a fixed default
// mixed with `salt`. Printed to stdout so that a failure can be replayed.
uint64_t test_seed(const std::string& test_name, uint64_t salt = 0);

// Runs body(comm) on each world size of the thread backend, printing the size.
void for_each_world_size(std::initializer_list<int> sizes, const std::function<void(CommPtr)>& body);

// The world communicator of an *_mpi test binary.
CommPtr mpi_test_world();

// The ranks [0, n) of `comm` as their own communicator (collective over
// `comm`; ranks >= n get null).
CommPtr first_ranks(const CommPtr& comm, int n);

// A fresh empty directory under the system temp dir, removed at destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A fresh empty directory every rank of `comm` agrees on (rank 0 creates it
// and broadcasts the path), removed by rank 0 after a barrier at destruction.
// Construction and destruction are collective over `comm`.
class SharedTempDir {
 public:
  explicit SharedTempDir(CommPtr comm);
  ~SharedTempDir();
  SharedTempDir(const SharedTempDir&) = delete;
  SharedTempDir& operator=(const SharedTempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  CommPtr comm_;
  std::string path_;
};

}  // namespace dcpp::testing
