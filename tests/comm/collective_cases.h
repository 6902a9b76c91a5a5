// Collective checks shared by the thread backend tests (every world size of
// for_each_world_size) and the MPI tests (the mpirun world). Each check is
// called by every rank of `comm` with the same arguments, and computes its
// expected values independently of the code under test (closed forms over
// the ranks, literal tables, bit patterns written out by hand).
#pragma once

#include "dcpp/comm.h"

namespace dcpp::testing {

void check_barrier(const CommPtr& comm);
void check_broadcast(const CommPtr& comm);
void check_all_gather(const CommPtr& comm);
void check_all_gather_v(const CommPtr& comm);
void check_gather_v(const CommPtr& comm);
void check_scatter_v(const CommPtr& comm);
void check_all_to_all_v(const CommPtr& comm);
// Every reducible dtype with sum, max and min, against closed forms.
void check_all_reduce_dtypes(const CommPtr& comm);
// 16-bit floats accumulate in float32 and round once (literal table, sizes 1..5).
void check_all_reduce_half_accumulation(const CommPtr& comm);
// Random float32/float64 sums equal a left-to-right sum in rank order, bit for bit.
void check_all_reduce_rank_order(const CommPtr& comm);
// NaN propagates through max and min.
void check_all_reduce_nan(const CommPtr& comm);
// Counts not divisible by the world size, larger than one reduction block.
void check_all_reduce_large(const CommPtr& comm);
// bool and float8 are rejected with Error(kUnsupported) on every rank, and
// the communicator keeps working afterwards.
void check_all_reduce_unsupported(const CommPtr& comm);
void check_reduce_scatter(const CommPtr& comm);
// color = rank % 2 with key = -rank (reversed order), nested splits, a
// negative color, and collectives interleaved between parent and children.
void check_split(const CommPtr& comm);
// Communicator::all_reduce(Tensor&).
void check_tensor_all_reduce(const CommPtr& comm);

}  // namespace dcpp::testing
