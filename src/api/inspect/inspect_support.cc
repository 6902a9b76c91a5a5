#include "api/inspect/inspect_support.h"

#include <algorithm>
#include <set>

namespace dcpp {

std::vector<KeySummary> summarize_keys(const Metadata& md) {
  std::vector<KeySummary> keys;
  for (const auto& [key, t] : md.tensors) {
    KeySummary k;
    k.key = key;
    k.is_tensor = true;
    k.type = std::string(dtype_name(t.dtype));
    k.shape = t.global_shape;
    std::set<std::string> files;
    for (const auto& c : t.chunks) {
      if (c.location.byte_length == 0) continue;  // empty chunks (uneven sharding) store nothing
      ++k.chunks;
      k.bytes += c.location.byte_length;
      files.insert(c.location.file);
    }
    k.files.assign(files.begin(), files.end());
    keys.push_back(std::move(k));
  }
  for (const auto& [key, v] : md.values) {
    KeySummary k;
    k.key = key;
    k.is_tensor = false;
    k.type = std::string(value_kind_name(v.kind));
    k.chunks = 1;
    k.bytes = v.location.byte_length;
    if (!v.location.file.empty()) k.files.push_back(v.location.file);
    keys.push_back(std::move(k));
  }
  return keys;
}

ChunkCheck check_chunk_geometry(const std::string& who, const TensorMeta& t, const ChunkMeta& c, bool raw_bytes,
                                const std::string& meta_path, VerifyReporter& rep, uint64_t& numel) {
  const size_t ndim = t.global_shape.size();
  if (c.offsets.size() != ndim || c.sizes.size() != ndim) {
    rep.problem(meta_path, -1,
                who + " has offsets " + shape_to_string(c.offsets) + " and sizes " + shape_to_string(c.sizes) +
                    " for a tensor of " + std::to_string(ndim) + " dimensions");
    return ChunkCheck::kMalformed;
  }
  bool usable = true;
  numel = 1;
  for (size_t d = 0; d < ndim; ++d) {
    if (c.offsets[d] < 0 || c.sizes[d] < 0 || c.offsets[d] > t.global_shape[d] ||
        c.sizes[d] > t.global_shape[d] - c.offsets[d]) {
      usable = false;
    }
    numel *= static_cast<uint64_t>(std::max<int64_t>(c.sizes[d], 0));
  }
  if (!usable) {
    rep.problem(meta_path, -1,
                who + " of size " + shape_to_string(c.sizes) + " lies outside the global shape " +
                    shape_to_string(t.global_shape));
  }
  const uint64_t elem = dtype_size(t.dtype);
  if (raw_bytes && c.location.byte_length != numel * elem) {
    rep.problem(meta_path, -1,
                who + " of size " + shape_to_string(c.sizes) + " should hold " + std::to_string(numel * elem) +
                    " bytes of " + std::string(dtype_name(t.dtype)) + ", its location says " +
                    std::to_string(c.location.byte_length));
    usable = false;  // its bytes cannot be interpreted
  }
  return usable ? ChunkCheck::kUsable : ChunkCheck::kUnusable;
}

void check_chunk_tiling(const std::string& key, const Shape& shape, std::vector<const ChunkMeta*> boxes,
                        const std::string& meta_path, VerifyReporter& rep) {
  const size_t ndim = shape.size();
  uint64_t numel = 1;
  for (int64_t s : shape) numel *= static_cast<uint64_t>(s);
  size_t sweep = 0;
  size_t best = 0;
  for (size_t d = 0; d < ndim; ++d) {
    std::set<int64_t> distinct;
    for (const ChunkMeta* c : boxes) distinct.insert(c->offsets[d]);
    if (distinct.size() > best) {
      best = distinct.size();
      sweep = d;
    }
  }
  if (ndim > 0) {
    std::sort(boxes.begin(), boxes.end(), [sweep](const ChunkMeta* a, const ChunkMeta* b) {
      return a->offsets[sweep] != b->offsets[sweep] ? a->offsets[sweep] < b->offsets[sweep] : a->offsets < b->offsets;
    });
  }
  constexpr int kMaxOverlapReports = 20;
  int overlaps = 0;
  for (size_t i = 0; i < boxes.size(); ++i) {
    const ChunkMeta& a = *boxes[i];
    for (size_t j = i + 1; j < boxes.size(); ++j) {
      const ChunkMeta& b = *boxes[j];
      if (ndim > 0 && b.offsets[sweep] >= a.offsets[sweep] + a.sizes[sweep]) break;
      bool intersect = true;
      for (size_t d = 0; d < ndim && intersect; ++d) {
        intersect = a.offsets[d] < b.offsets[d] + b.sizes[d] && b.offsets[d] < a.offsets[d] + a.sizes[d];
      }
      if (!intersect) continue;
      if (++overlaps <= kMaxOverlapReports) {
        rep.problem(meta_path, -1,
                    "key " + quoted(key) + ": chunk at " + shape_to_string(a.offsets) + " of size " +
                        shape_to_string(a.sizes) + " overlaps chunk at " + shape_to_string(b.offsets) +
                        " of size " + shape_to_string(b.sizes));
      }
    }
  }
  if (overlaps > kMaxOverlapReports) {
    rep.problem(meta_path, -1,
                "key " + quoted(key) + ": " + std::to_string(overlaps - kMaxOverlapReports) +
                    " more overlapping chunk pairs not listed");
  }
  if (overlaps == 0) {
    // Disjoint and in bounds: they cover the tensor iff their volumes add up.
    uint64_t covered = 0;
    for (const ChunkMeta* c : boxes) covered += static_cast<uint64_t>(shape_numel(c->sizes));
    if (covered != numel) {
      rep.problem(meta_path, -1,
                  "key " + quoted(key) + ": the chunks cover " + std::to_string(covered) + " of the " +
                      std::to_string(numel) + " elements of shape " + shape_to_string(shape) +
                      " (some of the tensor was not saved)");
    }
  }
}

}  // namespace dcpp
