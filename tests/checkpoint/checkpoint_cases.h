// Checkpoint test cases shared by the thread tests (test_checkpoint) and the
// MPI tests (test_checkpoint_mpi). Each case runs on every rank of `comm`
// with the same checkpoint directory and reports through gtest assertions.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "dcpp/comm.h"
#include "dcpp/dtensor.h"
#include "dcpp/tensor.h"

namespace dcpp::testing {

// ---- the seed's two tests (test_tp_checkpoint.py) ----
void case_tp_checkpoint(const CommPtr& comm, const std::string& dir);
void case_tp_checkpoint_load_on_meta_device(const CommPtr& comm, const std::string& dir);

// ---- resharding ----
// A layout to save from or load into: a world size and a mesh shape
// ({n} or {2, 2}).
struct ReshardLayout {
  int world = 1;
  Shape mesh_shape;
  std::string name() const;
};
void PrintTo(const ReshardLayout& layout, std::ostream* os);  // gtest: "mesh 2x2"
// Every layout of the matrix: 1-d meshes of 1..5 ranks and a 2×2 mesh.
std::vector<ReshardLayout> reshard_layouts();
// Saves the matrix's state dict (tensors of rank 1–3, odd and zero sizes,
// float32/bfloat16/float16/int64/bool, placements chosen per tensor and
// layout, plain tensors among them) from `layout` (comm->size() == layout.world).
void case_reshard_save(const CommPtr& comm, const std::string& dir, const ReshardLayout& layout, uint64_t seed);
// Loads it into sentinel-filled targets with other placements (and one
// float32 → bfloat16 conversion), then compares byte for byte with the full
// tensors regenerated from `seed`.
void case_reshard_load(const CommPtr& comm, const std::string& dir, const ReshardLayout& layout, uint64_t seed);

// ---- optimizer state ----
// Trains the TP MLPModule with AdamW for 3 steps and saves model + optim.
void case_optim_train_save(const CommPtr& comm, const std::string& dir);
// Loads that checkpoint (any world size), trains 3 more steps and compares
// with an uninterrupted 6-step single-rank run (rtol 1e-5, atol 1e-6).
void case_optim_load_continue(const CommPtr& comm, const std::string& dir);

}  // namespace dcpp::testing
