#include "storage/fs/box_math.h"

#include <algorithm>
#include <cstring>

namespace dcpp::fs_detail {
namespace {

void decompose(const Shape& shape, size_t dim, Shape& prefix, uint64_t lo, uint64_t hi, uint64_t linear_base,
               std::vector<SubBox>& out) {
  const size_t ndim = shape.size();
  uint64_t inner = 1;
  for (size_t d = dim + 1; d < ndim; ++d) inner *= static_cast<uint64_t>(shape[d]);
  auto emit = [&](uint64_t first, uint64_t count) {  // indices [first, first+count) of `dim`, trailing dims whole
    SubBox box;
    box.offsets = prefix;
    box.lengths.assign(prefix.size(), 1);
    box.offsets.push_back(static_cast<int64_t>(first));
    box.lengths.push_back(static_cast<int64_t>(count));
    for (size_t d = dim + 1; d < ndim; ++d) {
      box.offsets.push_back(0);
      box.lengths.push_back(shape[d]);
    }
    box.linear_begin = linear_base + first * inner;
    out.push_back(std::move(box));
  };
  if (lo % inner == 0 && hi % inner == 0) {
    emit(lo / inner, (hi - lo) / inner);
    return;
  }
  const uint64_t i0 = lo / inner;
  const uint64_t i1 = (hi - 1) / inner;
  auto recurse = [&](uint64_t i, uint64_t sub_lo, uint64_t sub_hi) {
    prefix.push_back(static_cast<int64_t>(i));
    decompose(shape, dim + 1, prefix, sub_lo, sub_hi, linear_base + i * inner, out);
    prefix.pop_back();
  };
  if (i0 == i1) {
    recurse(i0, lo - i0 * inner, hi - i0 * inner);
    return;
  }
  uint64_t first_full = i0;
  if (lo % inner != 0) {
    recurse(i0, lo % inner, inner);
    first_full = i0 + 1;
  }
  const uint64_t end_full = hi / inner;
  if (end_full > first_full) emit(first_full, end_full - first_full);
  if (hi % inner != 0) recurse(end_full, 0, hi % inner);
}

}  // namespace

std::vector<SubBox> decompose_linear_range(const Shape& shape, uint64_t lo, uint64_t hi) {
  std::vector<SubBox> out;
  if (lo >= hi) return out;
  if (shape.empty()) {  // a scalar: one element
    out.push_back(SubBox{{}, {}, 0});
    return out;
  }
  Shape prefix;
  decompose(shape, 0, prefix, lo, hi, 0, out);
  return out;
}

void copy_box_range(const Shape& lengths, uint64_t l0, uint64_t l1, const std::byte* src, int64_t src_origin,
                    const Shape& src_strides, std::byte* dst, int64_t dst_origin, const Shape& dst_strides,
                    uint64_t elem) {
  if (l0 >= l1) return;
  const int64_t e = static_cast<int64_t>(elem);
  if (lengths.empty()) {  // a scalar
    std::memcpy(dst + dst_origin, src + src_origin, elem);
    return;
  }
  // Trailing dims that both sides hold contiguously merge into one row, so
  // a run of whole rows of a row-major box is one memcpy.
  size_t nd = lengths.size();
  const bool contiguous = src_strides[nd - 1] == 1 && dst_strides[nd - 1] == 1;
  uint64_t row = static_cast<uint64_t>(lengths[nd - 1]);
  if (contiguous) {
    while (nd > 1 && src_strides[nd - 2] == static_cast<int64_t>(row) &&
           dst_strides[nd - 2] == static_cast<int64_t>(row)) {
      row *= static_cast<uint64_t>(lengths[nd - 2]);
      --nd;
    }
  }
  // The multi-index of l0 over dims [0, nd - 1) and the position in the row,
  // on the stack for the usual ranks.
  constexpr size_t kInline = 8;
  uint64_t inline_index[kInline];
  std::vector<uint64_t> heap_index;
  uint64_t* index = inline_index;
  if (nd > kInline) {
    heap_index.resize(nd);
    index = heap_index.data();
  }
  const size_t last = nd - 1;
  index[last] = l0 % row;
  uint64_t rest = l0 / row;
  for (size_t d = last; d-- > 0;) {
    const uint64_t n = static_cast<uint64_t>(lengths[d]);
    index[d] = rest % n;
    rest /= n;
  }
  for (uint64_t l = l0; l < l1;) {
    int64_t s = src_origin, t = dst_origin;
    for (size_t d = 0; d < last; ++d) {
      s += static_cast<int64_t>(index[d]) * src_strides[d] * e;
      t += static_cast<int64_t>(index[d]) * dst_strides[d] * e;
    }
    const uint64_t n = std::min(row - index[last], l1 - l);
    if (contiguous) {
      s += static_cast<int64_t>(index[last]) * e;
      t += static_cast<int64_t>(index[last]) * e;
      std::memcpy(dst + t, src + s, n * elem);
    } else {
      const int64_t ss = src_strides[last] * e, ts = dst_strides[last] * e;
      s += static_cast<int64_t>(index[last]) * ss;
      t += static_cast<int64_t>(index[last]) * ts;
      for (uint64_t k = 0; k < n; ++k) {
        std::memcpy(dst + t + static_cast<int64_t>(k) * ts, src + s + static_cast<int64_t>(k) * ss, elem);
      }
    }
    l += n;
    index[last] += n;
    for (size_t d = last; d > 0 && index[d] == (d == last ? row : static_cast<uint64_t>(lengths[d])); --d) {
      index[d] = 0;
      ++index[d - 1];
    }
  }
}

BoxInChunk::BoxInChunk(const Shape& chunk_sizes, const Shape& box_offsets, const Shape& box_lengths,
                       uint64_t element_size)
    : offsets_(box_offsets), lengths_(box_lengths), elem_(element_size) {
  const size_t ndim = chunk_sizes.size();
  strides_.assign(ndim, 1);
  for (size_t d = ndim; d-- > 1;) strides_[d - 1] = strides_[d] * chunk_sizes[d];
  box_strides_.assign(ndim, 1);
  for (size_t d = ndim; d-- > 1;) box_strides_[d - 1] = box_strides_[d] * box_lengths[d];
  for (int64_t n : lengths_) numel_ *= static_cast<uint64_t>(n);
  uint64_t run_elems = 1;
  if (ndim > 0) {
    split_ = ndim - 1;
    while (split_ > 0 && offsets_[split_] == 0 && lengths_[split_] == chunk_sizes[split_]) --split_;
    run_elems = static_cast<uint64_t>(lengths_[split_]) * static_cast<uint64_t>(strides_[split_]);
  }
  run_bytes_ = run_elems * elem_;
  for (size_t d = 0; d < ndim; ++d) base_ += static_cast<uint64_t>(offsets_[d]) * static_cast<uint64_t>(strides_[d]);
}

uint64_t BoxInChunk::chunk_byte(uint64_t l) const {
  uint64_t pos = 0;
  for (size_t d = lengths_.size(); d-- > 0;) {
    const uint64_t n = static_cast<uint64_t>(lengths_[d]);
    const uint64_t i = l % n;
    l /= n;
    pos += (static_cast<uint64_t>(offsets_[d]) + i) * static_cast<uint64_t>(strides_[d]);
  }
  return pos * elem_;
}

uint64_t BoxInChunk::lower_bound(uint64_t byte) const {
  uint64_t lo = 0, hi = numel_;  // answer in [lo, hi]
  while (lo < hi) {
    const uint64_t mid = lo + (hi - lo) / 2;
    if (chunk_byte(mid) >= byte) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return lo;
}

std::pair<uint64_t, uint64_t> BoxInChunk::linear_range_in(uint64_t a, uint64_t b) const {
  if (numel_ == 0) return {0, 0};
  return {lower_bound(a), lower_bound(b)};
}

std::vector<std::pair<uint64_t, uint64_t>> BoxInChunk::touched_blocks(uint64_t block_size) const {
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  if (numel_ == 0) return ranges;
  // Consecutive runs start at most one step of the outermost dim apart: when
  // that step is at most a block, no block between the first and the last
  // byte is skipped, so there is no need to visit every run (a narrow
  // column box has one per row).
  if (!strides_.empty() && static_cast<uint64_t>(strides_[0]) * elem_ <= block_size) {
    const uint64_t first = base_ * elem_;
    const uint64_t last = chunk_byte(numel_ - 1) + elem_ - 1;
    ranges.emplace_back(first / block_size, last / block_size);
    return ranges;
  }
  for_each_run([&](uint64_t start, uint64_t length) {
    const uint64_t b0 = start / block_size;
    const uint64_t b1 = (start + length - 1) / block_size;
    if (!ranges.empty() && b0 <= ranges.back().second + 1) {
      ranges.back().second = std::max(ranges.back().second, b1);
    } else {
      ranges.emplace_back(b0, b1);
    }
  });
  return ranges;
}

}  // namespace dcpp::fs_detail
