#include "checkpoint/wire.h"

namespace dcpp::detail {

namespace {

void write_item(WireWriter& w, const WriteItem& item) {
  w.str(item.fqn);
  w.u8(static_cast<uint8_t>(item.type));
  w.u8(static_cast<uint8_t>(item.dtype));
  w.shape(item.global_shape);
  w.shape(item.offsets);
  w.shape(item.sizes);
  w.u8(static_cast<uint8_t>(item.value_kind));
  w.u64(item.nbytes);
  w.u64(item.content_hash);
}

WriteItem read_item(WireReader& r) {
  WriteItem item;
  item.fqn = r.str();
  item.type = static_cast<WriteItemType>(r.u8());
  item.dtype = static_cast<DType>(r.u8());
  item.global_shape = r.shape();
  item.offsets = r.shape();
  item.sizes = r.shape();
  item.value_kind = static_cast<ValueKind>(r.u8());
  item.nbytes = r.u64();
  item.content_hash = r.u64();
  return item;
}

void write_items(WireWriter& w, const std::vector<WriteItem>& items) {
  w.u64(items.size());
  for (const auto& item : items) write_item(w, item);
}

std::vector<WriteItem> read_items(WireReader& r) {
  std::vector<WriteItem> items(r.u64());
  for (auto& item : items) item = read_item(r);
  return items;
}

}  // namespace

void write_save_plan(WireWriter& w, const SavePlan& plan) {
  write_items(w, plan.items);
  write_items(w, plan.empty_chunks);
}

SavePlan read_save_plan(WireReader& r) {
  SavePlan plan;
  plan.items = read_items(r);
  plan.empty_chunks = read_items(r);
  return plan;
}

void write_results(WireWriter& w, const std::vector<WriteResult>& results) {
  w.u64(results.size());
  for (const auto& res : results) {
    w.str(res.fqn);
    w.u8(static_cast<uint8_t>(res.type));
    w.shape(res.offsets);
    w.shape(res.sizes);
    w.str(res.location.file);
    w.u64(res.location.byte_offset);
    w.u64(res.location.byte_length);
    w.u64(res.location.block_checksums.size());
    for (uint64_t c : res.location.block_checksums) w.u64(c);
    w.u64(res.location.stored_blocks.size());
    for (const StoredBlock& b : res.location.stored_blocks) {
      w.u8(b.encoding);
      w.u64(b.offset);
      w.u64(b.length);
    }
    w.u8(res.location.content_hash ? 1 : 0);
    if (res.location.content_hash) {
      w.u64((*res.location.content_hash)[0]);
      w.u64((*res.location.content_hash)[1]);
    }
  }
}

std::vector<WriteResult> read_results(WireReader& r) {
  std::vector<WriteResult> out(r.u64());
  for (auto& res : out) {
    res.fqn = r.str();
    res.type = static_cast<WriteItemType>(r.u8());
    res.offsets = r.shape();
    res.sizes = r.shape();
    res.location.file = r.str();
    res.location.byte_offset = r.u64();
    res.location.byte_length = r.u64();
    res.location.block_checksums.resize(r.u64());
    for (auto& c : res.location.block_checksums) c = r.u64();
    res.location.stored_blocks.resize(r.u64());
    for (auto& b : res.location.stored_blocks) {
      b.encoding = r.u8();
      b.offset = r.u64();
      b.length = r.u64();
    }
    if (r.u8()) {
      const uint64_t lo = r.u64();
      res.location.content_hash = std::array<uint64_t, 2>{lo, r.u64()};
    }
  }
  return out;
}

}  // namespace dcpp::detail
