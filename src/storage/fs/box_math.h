// Geometry of boxes inside row-major chunks, shared by the native format's
// write engine (staging a strided tensor in pieces) and read engine (copying
// the part of a box that a window of read bytes holds).
//
// The key fact both rely on: the elements of a box, taken in the box's own
// row-major order, lie at strictly increasing positions of the chunk they
// sit in. So the box elements held by a byte window [a, b) of the chunk form
// one contiguous range of the box's linear indices, and any contiguous range
// of linear indices splits into at most 2·ndim − 1 rectangular sub-boxes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "dcpp/dtype.h"

namespace dcpp::fs_detail {

// A rectangular piece of a box: [offsets, offsets + lengths), relative to the box.
struct SubBox {
  Shape offsets;
  Shape lengths;
  uint64_t linear_begin = 0;  // linear index (row-major over the box) of its first element
};

// The sub-boxes that cover linear indices [lo, hi) of a row-major box of
// `shape`, in increasing linear order. Each sub-box's elements are a
// contiguous linear range. Empty when lo >= hi.
std::vector<SubBox> decompose_linear_range(const Shape& shape, uint64_t lo, uint64_t hi);

// Copies the elements with linear indices [l0, l1) (row-major over
// `lengths`) of a box from `src` to `dst` without allocating: element i of
// the box lies at byte origin + Σ index·stride·elem of each side (strides in
// elements; an origin may be negative when the buffer starts past element
// 0). Both sides hold the same dtype of `elem` bytes. Each stretch of the
// innermost dim is one memcpy when both sides are contiguous along it.
void copy_box_range(const Shape& lengths, uint64_t l0, uint64_t l1, const std::byte* src, int64_t src_origin,
                    const Shape& src_strides, std::byte* dst, int64_t dst_origin, const Shape& dst_strides,
                    uint64_t elem);

// A box [box_offsets, box_offsets + box_lengths) of a row-major chunk of
// `chunk_sizes` with `element_size`-byte elements.
class BoxInChunk {
 public:
  BoxInChunk(const Shape& chunk_sizes, const Shape& box_offsets, const Shape& box_lengths, uint64_t element_size);

  const Shape& chunk_strides() const { return strides_; }
  const Shape& box_strides() const { return box_strides_; }  // of the box itself, row-major
  const Shape& box_lengths() const { return lengths_; }
  uint64_t numel() const { return numel_; }
  uint64_t element_size() const { return elem_; }
  // Byte position inside the chunk of the box element with linear index `l`.
  uint64_t chunk_byte(uint64_t l) const;
  // The box's elements as maximal contiguous byte runs of the chunk, in
  // increasing order: fn(first_byte, byte_length).
  template <typename Fn>
  void for_each_run(Fn&& fn) const;
  // The linear range [l0, l1) of box elements whose first byte lies in
  // chunk bytes [a, b).
  std::pair<uint64_t, uint64_t> linear_range_in(uint64_t a, uint64_t b) const;
  // Inclusive ranges of `block_size` blocks that the box touches, sorted,
  // consecutive touched blocks merged.
  std::vector<std::pair<uint64_t, uint64_t>> touched_blocks(uint64_t block_size) const;

 private:
  uint64_t lower_bound(uint64_t byte) const;

  Shape offsets_;
  Shape lengths_;
  Shape strides_;  // chunk element strides
  Shape box_strides_;
  uint64_t elem_;
  uint64_t numel_ = 1;
  size_t split_ = 0;       // innermost dim the box covers only partly (runs iterate the dims before it)
  uint64_t run_bytes_ = 0;
  uint64_t base_ = 0;      // chunk element index of the box's first element
};

template <typename Fn>
void BoxInChunk::for_each_run(Fn&& fn) const {
  if (numel_ == 0) return;
  const size_t ndim = lengths_.size();
  (void)ndim;
  Shape index(split_, 0);
  uint64_t nruns = 1;
  for (size_t d = 0; d < split_; ++d) nruns *= static_cast<uint64_t>(lengths_[d]);
  uint64_t start = base_;
  for (uint64_t run = 0; run < nruns; ++run) {
    fn(start * elem_, run_bytes_);
    for (size_t d = split_; d-- > 0;) {
      if (++index[d] < lengths_[d]) {
        start += static_cast<uint64_t>(strides_[d]);
        break;
      }
      start -= static_cast<uint64_t>(strides_[d]) * static_cast<uint64_t>(lengths_[d] - 1);
      index[d] = 0;
    }
  }
}

}  // namespace dcpp::fs_detail
