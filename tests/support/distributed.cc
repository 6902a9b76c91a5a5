#include "support/distributed.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <iostream>

namespace dcpp::testing {

uint64_t test_seed(const std::string& test_name, uint64_t salt) {
  uint64_t seed = 20261128;
  if (const char* env = std::getenv("DCPP_TEST_SEED")) seed = std::strtoull(env, nullptr, 10);
  seed = seed * 0x9E3779B97F4A7C15ull + salt;
  std::printf("[seed] %s: %llu (replay with DCPP_TEST_SEED)\n", test_name.c_str(),
              static_cast<unsigned long long>(seed));
  return seed;
}

void for_each_world_size(std::initializer_list<int> sizes, const std::function<void(CommPtr)>& body) {
  for (int n : sizes) {
    SCOPED_TRACE("world size " + std::to_string(n));
    run_ranks(n, body);
  }
}

CommPtr mpi_test_world() { return mpi_world(); }

CommPtr first_ranks(const CommPtr& comm, int n) {
  const bool member = comm->rank() < n;
  CommPtr sub = comm->split(member ? 0 : 1, comm->rank());
  return member ? sub : nullptr;
}

namespace {

std::string make_temp_dir(const char* prefix) {
  std::string tmpl = (std::filesystem::temp_directory_path() / (std::string(prefix) + "-XXXXXX")).string();
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return tmpl;
}

}  // namespace

TempDir::TempDir() : path_(make_temp_dir("dcpp-test")) {}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

SharedTempDir::SharedTempDir(CommPtr comm) : comm_(std::move(comm)) {
  if (comm_->rank() == 0) path_ = make_temp_dir("dcpp-ckpt");
  uint64_t n = path_.size();
  comm_->broadcast(&n, sizeof n, 0);
  path_.resize(n);
  comm_->broadcast(path_.data(), n, 0);
}

SharedTempDir::~SharedTempDir() {
  comm_->barrier();
  if (comm_->rank() == 0) {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
}

}  // namespace dcpp::testing
