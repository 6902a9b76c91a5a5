// The storage conformance suite: every case of conformance_cases.h for every
// registered backend (backend.h), named conformance_<Case>.<Test>/<backend>
// (with the dtype or value kind where a case runs per dtype or kind). A case
// that a backend's capabilities rule out is skipped with the reason. Compiled
// into both suite binaries (tests.cmake), which define where the cases run:
// thread ranks at world sizes 1-5, or under mpirun.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <tuple>

#include "conformance/conformance_cases.h"
#include "support/distributed.h"

namespace dcpp::testing {
namespace {

template <typename T>
bool has(const std::vector<T>& list, T x) {
  return std::find(list.begin(), list.end(), x) != list.end();
}

std::string param_name(DType dtype) { return std::string(dtype_name(dtype)); }

std::string param_name(ValueKind kind) {
  switch (kind) {
    case ValueKind::kInt64: return "int";
    case ValueKind::kDouble: return "float";
    case ValueKind::kBool: return "bool";
    case ValueKind::kString: return "string";
    case ValueKind::kBytes: return "bytes";
  }
  return "unknown";
}

std::string test_name() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return std::string(info->test_suite_name()) + "." + info->name();
}

// Runs fn(backend, comm, dir, args..., seed) on every world, with this test's seed.
template <typename Case, typename... Args>
void run_case(const StorageBackend& backend, Case fn, Args... args) {
  const uint64_t seed = test_seed(test_name());
  run_on_worlds([&](const CommPtr& comm, const std::string& dir) { fn(backend, comm, dir, args..., seed); });
}

// ---- per backend ----

// A backend whose storage cannot be reached here skips every case, saying why.
void skip_if_unavailable(const StorageBackend& backend) {
  if (!backend.caps.unavailable.empty()) GTEST_SKIP() << backend.name << ": " << backend.caps.unavailable;
}

class conformance_Backend : public ::testing::TestWithParam<StorageBackend> {
 protected:
  void SetUp() override { skip_if_unavailable(GetParam()); }
  const StorageBackend& backend() const { return GetParam(); }
};

std::string backend_name(const ::testing::TestParamInfo<StorageBackend>& info) { return info.param.name; }

// "<backend>_<dtype or value kind>".
template <typename T>
std::string backend_and(const ::testing::TestParamInfo<std::tuple<StorageBackend, T>>& info) {
  return std::get<0>(info.param).name + "_" + param_name(std::get<1>(info.param));
}

class conformance_Tensors : public conformance_Backend {};

TEST_P(conformance_Tensors, EmptyAndScalar) { run_case(backend(), case_empty_and_scalar); }

TEST_P(conformance_Tensors, UnevenShards) { run_case(backend(), case_uneven_shards); }

INSTANTIATE_TEST_SUITE_P(, conformance_Tensors, ::testing::ValuesIn(registered_backends()), backend_name);

class conformance_Reshard : public conformance_Backend {};

TEST_P(conformance_Reshard, SaveOnNLoadOnM) {
  const uint64_t seed = test_seed(test_name());
  run_resharded([&](const CommPtr& comm, const std::string& dir) { case_reshard_save(backend(), comm, dir, seed); },
                [&](const CommPtr& comm, const std::string& dir) { case_reshard_load(backend(), comm, dir, seed); });
}

INSTANTIATE_TEST_SUITE_P(, conformance_Reshard, ::testing::ValuesIn(registered_backends()), backend_name);

class conformance_Keys : public conformance_Backend {};

TEST_P(conformance_Keys, MissingKey) { run_case(backend(), case_missing_key); }

INSTANTIATE_TEST_SUITE_P(, conformance_Keys, ::testing::ValuesIn(registered_backends()), backend_name);

class conformance_Damage : public conformance_Backend {};

TEST_P(conformance_Damage, TruncatedItem) { run_case(backend(), case_damaged_item, Damage::kTruncate); }

TEST_P(conformance_Damage, CorruptedItem) {
  if (!backend().caps.detects_corruption) GTEST_SKIP() << backend().caps.corruption_reason;
  run_case(backend(), case_damaged_item, Damage::kFlipByte);
}

INSTANTIATE_TEST_SUITE_P(, conformance_Damage, ::testing::ValuesIn(registered_backends()), backend_name);

class conformance_Overwrite : public conformance_Backend {};

TEST_P(conformance_Overwrite, FailedFileWriteKeepsTheOldCheckpoint) {
  if (!backend().caps.injectable_file_system) GTEST_SKIP() << backend().caps.file_system_reason;
  run_case(backend(), case_failed_overwrite, SaveFailure::kFileWrite);
}

TEST_P(conformance_Overwrite, RankFailingAfterItsWritesKeepsTheOldCheckpoint) {
  run_case(backend(), case_failed_overwrite, SaveFailure::kRankAfterWriting);
}

INSTANTIATE_TEST_SUITE_P(, conformance_Overwrite, ::testing::ValuesIn(registered_backends()), backend_name);

// ---- per backend and dtype ----

class conformance_DType : public ::testing::TestWithParam<std::tuple<StorageBackend, DType>> {
 protected:
  void SetUp() override { skip_if_unavailable(std::get<0>(GetParam())); }
};

TEST_P(conformance_DType, RoundTrip) {
  const auto& [backend, dtype] = GetParam();
  if (!has(backend.caps.dtypes, dtype)) {
    GTEST_SKIP() << backend.name << " cannot store " << dtype_name(dtype) << ": " << backend.caps.dtype_reason;
  }
  run_case(backend, case_dtype_round_trip, dtype);
}

INSTANTIATE_TEST_SUITE_P(, conformance_DType,
                         ::testing::Combine(::testing::ValuesIn(registered_backends()),
                                            ::testing::ValuesIn(all_dtypes())),
                         backend_and<DType>);

// ---- per backend and value kind ----

class conformance_Values : public ::testing::TestWithParam<std::tuple<StorageBackend, ValueKind>> {
 protected:
  void SetUp() override { skip_if_unavailable(std::get<0>(GetParam())); }
};

TEST_P(conformance_Values, RoundTrip) {
  const auto& [backend, kind] = GetParam();
  if (!has(backend.caps.values, kind)) {
    GTEST_SKIP() << backend.name << " cannot store " << param_name(kind) << " values: " << backend.caps.value_reason;
  }
  run_case(backend, case_value_round_trip, kind);
}

INSTANTIATE_TEST_SUITE_P(, conformance_Values,
                         ::testing::Combine(::testing::ValuesIn(registered_backends()),
                                            ::testing::ValuesIn(all_value_kinds())),
                         backend_and<ValueKind>);

}  // namespace
}  // namespace dcpp::testing
