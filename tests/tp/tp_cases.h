// Tensor-parallel cases shared by tp_test.cc (threads) and tp_mpi_test.cc
// (MPI): each runs on one rank of `world`.
#pragma once

#include <cstdint>

#include "dcpp/comm.h"

namespace dcpp::testing {

// MLPModule {net1: Colwise, net2: Rowwise} and UnevenShardedModel {net1:
// Colwise, net2: Rowwise, net3: Colwise} match a single-rank model: forward,
// input and parameter gradients, and parameters after 3 SGD (momentum 0.9)
// and 3 AdamW steps (rtol 1e-5, atol 1e-6).
void tp_matches_single_rank_case(const CommPtr& world, uint64_t seed);
// Models built on meta and parallelized: DTensor parameters without storage,
// local shapes from literal tables; assign-loading materialises them.
void tp_meta_case(const CommPtr& world);
// State dicts of a TP model: DTensor values, loading full tensors and
// resharded DTensors, optimizer state as DTensors with the same placements.
void tp_state_dict_case(const CommPtr& world, uint64_t seed);

}  // namespace dcpp::testing
