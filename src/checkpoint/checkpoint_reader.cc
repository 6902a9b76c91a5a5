// CheckpointReader: single-process read access through any StorageReader;
// every read is a LoadPlan of the overlap boxes, so a box read touches (and
// verifies) only the blocks that hold it.
#include <algorithm>

#include "dcpp/checkpoint_reader.h"
#include "dcpp/error.h"

namespace dcpp {

namespace {

// Sends every tensor item into one caller tensor (the box) and keeps value bytes.
class BoxPlanner : public LoadPlanner {
 public:
  explicit BoxPlanner(Tensor* out) : out_(out) {}
  void set_up(StateDict&, const Metadata&, int, bool) override {}
  LoadPlan create_local_plan() override { return {}; }
  Tensor resolve_tensor(const ReadItem& item) override {
    Tensor view = *out_;
    for (size_t d = 0; d < item.lengths.size(); ++d) {
      view = view.narrow(static_cast<int64_t>(d), item.dest_offsets[d], item.lengths[d]);
    }
    return view;
  }
  void load_value(const ReadItem&, const Bytes& bytes) override { bytes_ = bytes; }
  void finish() override {}
  Bytes& bytes() { return bytes_; }

 private:
  Tensor* out_;
  Bytes bytes_;
};

}  // namespace

CheckpointReader::CheckpointReader(std::unique_ptr<StorageReader> reader) : reader_(std::move(reader)) {
  reader_->set_up(0, 1, true);
  metadata_ = reader_->read_metadata();
}

CheckpointReader::~CheckpointReader() = default;
CheckpointReader::CheckpointReader(CheckpointReader&&) noexcept = default;
CheckpointReader& CheckpointReader::operator=(CheckpointReader&&) noexcept = default;

std::vector<std::string> CheckpointReader::keys() const {
  std::vector<std::string> out;
  for (const auto& [k, t] : metadata_.tensors) out.push_back(k);
  for (const auto& [k, v] : metadata_.values) out.push_back(k);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> CheckpointReader::tensor_keys() const {
  std::vector<std::string> out;
  for (const auto& [k, t] : metadata_.tensors) out.push_back(k);
  return out;
}

std::vector<std::string> CheckpointReader::value_keys() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : metadata_.values) out.push_back(k);
  return out;
}

CheckpointReader::TensorInfo CheckpointReader::tensor_info(const std::string& key) const {
  auto it = metadata_.tensors.find(key);
  if (it == metadata_.tensors.end()) {
    if (metadata_.values.count(key)) {
      throw Error(ErrorCode::kInvalidArgument, "checkpoint key '" + key + "' is a value, not a tensor");
    }
    throw Error(ErrorCode::kNotFound, "the checkpoint has no key '" + key + "'");
  }
  return TensorInfo{it->second.dtype, it->second.global_shape};
}

StateValue CheckpointReader::value(const std::string& key) {
  auto it = metadata_.values.find(key);
  if (it == metadata_.values.end()) {
    if (metadata_.tensors.count(key)) {
      throw Error(ErrorCode::kInvalidArgument, "checkpoint key '" + key + "' is a tensor, not a value");
    }
    throw Error(ErrorCode::kNotFound, "the checkpoint has no key '" + key + "'");
  }
  Tensor none;
  BoxPlanner planner(&none);
  LoadPlan plan;
  ReadItem item;
  item.fqn = key;
  item.type = ReadItemType::kValue;
  plan.items.push_back(item);
  reader_->read_data(plan, planner);
  return decode_value(it->second.kind, planner.bytes(), key);
}

Tensor CheckpointReader::read(const std::string& key, std::optional<DType> dtype) {
  TensorInfo info = tensor_info(key);
  return read(key, Shape(info.shape.size(), 0), info.shape, dtype);
}

Tensor CheckpointReader::read(const std::string& key, const Shape& offsets, const Shape& sizes,
                              std::optional<DType> dtype) {
  TensorInfo info = tensor_info(key);
  Tensor out = Tensor::empty(sizes, dtype.value_or(info.dtype));
  read_into(key, offsets, out);
  return out;
}

void CheckpointReader::read_into(const std::string& key, const Shape& offsets, Tensor& out) {
  TensorInfo info = tensor_info(key);
  const Shape& sizes = out.shape();
  const size_t nd = info.shape.size();
  bool ok = offsets.size() == nd && sizes.size() == nd;
  for (size_t d = 0; ok && d < nd; ++d) {
    ok = offsets[d] >= 0 && sizes[d] >= 0 && offsets[d] <= info.shape[d] && sizes[d] <= info.shape[d] - offsets[d];
  }
  if (!ok) {
    throw Error(ErrorCode::kInvalidArgument, "box at " + shape_to_string(offsets) + " of size " +
                                                 shape_to_string(sizes) + " lies outside '" + key +
                                                 "' of shape " + shape_to_string(info.shape));
  }
  if (out.numel() == 0) return;
  const TensorMeta& tm = metadata_.tensors.at(key);
  LoadPlan plan;
  int64_t covered = 0;
  for (size_t c = 0; c < tm.chunks.size(); ++c) {
    const ChunkMeta& chunk = tm.chunks[c];
    if (chunk.offsets.size() != nd || chunk.sizes.size() != nd) {
      throw Error(ErrorCode::kCorrupt, "checkpoint chunk " + std::to_string(c) + " of '" + key +
                                           "' does not have the tensor's " + std::to_string(nd) + " dims");
    }
    ReadItem item;
    item.fqn = key;
    item.chunk_index = c;
    item.storage_offsets.resize(nd);
    item.dest_offsets.resize(nd);
    item.lengths.resize(nd);
    bool overlap = true;
    for (size_t d = 0; d < nd; ++d) {
      int64_t lo = std::max(offsets[d], chunk.offsets[d]);
      int64_t hi = std::min(offsets[d] + sizes[d], chunk.offsets[d] + chunk.sizes[d]);
      if (hi <= lo) {
        overlap = false;
        break;
      }
      item.storage_offsets[d] = lo - chunk.offsets[d];
      item.dest_offsets[d] = lo - offsets[d];
      item.lengths[d] = hi - lo;
    }
    if (!overlap) continue;
    covered += shape_numel(item.lengths);
    plan.items.push_back(std::move(item));
  }
  // Saved chunks never overlap (save validates it), so the volumes add up
  // exactly when the box is fully covered.
  if (covered != out.numel()) {
    throw Error(ErrorCode::kCorrupt, "the checkpoint's chunks of '" + key + "' cover " + std::to_string(covered) +
                                         " of the " + std::to_string(out.numel()) + " elements of box " +
                                         shape_to_string(offsets) + "+" + shape_to_string(sizes));
  }
  BoxPlanner planner(&out);
  reader_->read_data(plan, planner);
}

}  // namespace dcpp
