// dcpp_interop_tool: the C++ half of `make interop` (scripts/interop/).
//
//   load <format> <ckpt> <expected_dir> <world>   load a checkpoint written by
//       PyTorch on <world> thread ranks (every tensor Shard(0), a sentinel
//       fill first), gather it and compare each tensor bit-exactly and each
//       value exactly against what PyTorch dumped (manifest.json + .bin files).
//   save <format> <expected_dir> <out> <world>    save the dumped tensors and
//       values with dcpp from <world> thread ranks (Shard(0)), for PyTorch to load.
// Formats: dcp, hf-full, hf-sharded, native. Exit status 0 on success.
#include <simdjson.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "dcpp/checkpoint.h"
#include "dcpp/dtensor.h"
#include "dcpp/error.h"
#include "dcpp/fs_storage.h"
#include "dcpp/safetensors_storage.h"
#include "dcpp/torch_dcp_storage.h"

using namespace dcpp;

namespace {

struct Entry {
  std::string key;
  bool is_tensor = true;
  DType dtype = DType::kFloat32;
  Shape shape;
  Tensor full;
  StateValue value;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::kNotFound, "cannot open " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<Entry> read_manifest(const std::string& dir) {
  simdjson::dom::parser parser;
  simdjson::padded_string json = simdjson::padded_string(slurp(dir + "/manifest.json"));
  std::vector<Entry> out;
  for (auto e : parser.parse(json).get_array()) {
    Entry entry;
    entry.key = std::string(std::string_view(e["key"]));
    const std::string kind = std::string(std::string_view(e["kind"]));
    if (kind == "tensor") {
      entry.dtype = dtype_from_name(std::string_view(e["dtype"]));
      for (auto d : e["shape"].get_array()) entry.shape.push_back(int64_t(d));
      entry.full = Tensor::empty(entry.shape, entry.dtype);
      const std::string bytes = slurp(dir + "/" + std::string(std::string_view(e["file"])));
      if (bytes.size() != entry.full.nbytes()) throw Error(ErrorCode::kCorrupt, "bad dump size for " + entry.key);
      if (!bytes.empty()) std::memcpy(entry.full.data_ptr(), bytes.data(), bytes.size());
    } else {
      entry.is_tensor = false;
      if (kind == "int") entry.value = int64_t(e["value"]);
      if (kind == "float") entry.value = double(e["value"]);
      if (kind == "bool") entry.value = bool(e["value"]);
      if (kind == "str") entry.value = std::string(std::string_view(e["value"]));
    }
    out.push_back(std::move(entry));
  }
  return out;
}

std::unique_ptr<StorageReader> make_reader(const std::string& format, const std::string& path) {
  if (format == "dcp") return std::make_unique<TorchDcpReader>(path);
  if (format == "hf-full" || format == "hf-sharded") return std::make_unique<SafetensorsReader>(path);
  if (format == "native") return std::make_unique<FileSystemReader>(path);
  throw Error(ErrorCode::kInvalidArgument, "unknown format " + format);
}

std::unique_ptr<StorageWriter> make_writer(const std::string& format, const std::string& path) {
  if (format == "dcp") return std::make_unique<TorchDcpWriter>(path);
  SafetensorsWriterOptions o;
  o.torch_compatible = true;
  if (format == "hf-full") return std::make_unique<SafetensorsWriter>(path, o);
  if (format == "hf-sharded") {
    o.layout = SafetensorsLayout::kSharded;
    return std::make_unique<SafetensorsWriter>(path, o);
  }
  if (format == "native") return std::make_unique<FileSystemWriter>(path);
  throw Error(ErrorCode::kInvalidArgument, "unknown format " + format);
}

// This rank's Shard(0) piece of a full tensor (0-d tensors stay plain).
StateValue shard_of(const Tensor& full, const DeviceMesh& mesh, int rank, int world) {
  if (full.dim() == 0) return full.clone();
  ChunkExtent ext = shard_extent(full.size(0), world, rank);
  Tensor local = full.narrow(0, std::min(ext.offset, full.size(0)), ext.length).clone();
  return DTensor(local, mesh, {Shard{0}}, full.shape());
}

int load_cmd(const std::string& format, const std::string& ckpt, const std::string& expected, int world) {
  const auto entries = read_manifest(expected);
  std::mutex mu;
  int checked = 0;
  run_ranks(world, [&](CommPtr comm) {
    const int rank = comm->rank();
    DeviceMesh mesh = init_device_mesh(comm, "cpu", {world});
    StateDict sd;
    for (const auto& e : entries) {
      if (e.is_tensor) {
        Tensor sentinel = Tensor::full(e.shape, -7.0, e.dtype);
        sd.set(e.key, shard_of(sentinel, mesh, rank, world));
      } else if (e.value.holds<int64_t>()) {
        sd.set(e.key, int64_t(-1));
      } else if (e.value.holds<double>()) {
        sd.set(e.key, -1.0);
      } else if (e.value.holds<bool>()) {
        sd.set(e.key, !e.value.as<bool>());
      } else if (e.value.holds<std::string>()) {
        sd.set(e.key, std::string("sentinel"));
      }
    }
    auto reader = make_reader(format, ckpt);
    LoadOptions lo;
    lo.comm = comm;
    load(sd, *reader, lo);
    for (const auto& e : entries) {
      const StateValue& got = sd.at(e.key);
      if (e.is_tensor) {
        Tensor full = got.is_dtensor() ? got.as<DTensor>().full_tensor() : got.as<Tensor>();
        if (rank == 0 && !equal(full, e.full)) {
          throw Error(ErrorCode::kInternal, "tensor '" + e.key + "' differs from PyTorch's (max |diff| " +
                                                std::to_string(max_abs_diff(full, e.full)) + ")");
        }
      } else if (rank == 0) {
        bool same = got.variant() .index() == e.value.variant().index();
        if (same && got.holds<int64_t>()) same = got.as<int64_t>() == e.value.as<int64_t>();
        if (same && got.holds<double>()) same = got.as<double>() == e.value.as<double>();
        if (same && got.holds<bool>()) same = got.as<bool>() == e.value.as<bool>();
        if (same && got.holds<std::string>()) same = got.as<std::string>() == e.value.as<std::string>();
        if (!same) throw Error(ErrorCode::kInternal, "value '" + e.key + "' differs from PyTorch's");
      }
      if (rank == 0) {
        std::lock_guard lock(mu);
        ++checked;
      }
    }
  });
  std::cout << "dcpp loaded " << format << " " << ckpt << " on " << world << " ranks: " << checked
            << " entries match PyTorch\n";
  return 0;
}

int save_cmd(const std::string& format, const std::string& expected, const std::string& out, int world) {
  const auto entries = read_manifest(expected);
  run_ranks(world, [&](CommPtr comm) {
    const int rank = comm->rank();
    DeviceMesh mesh = init_device_mesh(comm, "cpu", {world});
    StateDict sd;
    for (const auto& e : entries) {
      if (e.is_tensor) {
        sd.set(e.key, shard_of(e.full, mesh, rank, world));
      } else if (format == "dcp" || format == "native") {
        sd.set(e.key, e.value);
      }
    }
    auto writer = make_writer(format, out);
    SaveOptions so;
    so.comm = comm;
    save(sd, *writer, so);
  });
  std::cout << "dcpp saved " << format << " " << out << " from " << world << " ranks\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::cerr << "usage: dcpp_interop_tool load|save <format> <ckpt|expected> <expected|out> <world>\n";
    return 2;
  }
  try {
    const std::string cmd = argv[1];
    if (cmd == "load") return load_cmd(argv[2], argv[3], argv[4], std::atoi(argv[5]));
    if (cmd == "save") return save_cmd(argv[2], argv[3], argv[4], std::atoi(argv[5]));
    std::cerr << "unknown command " << cmd << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "dcpp_interop_tool: " << e.what() << "\n";
    return 1;
  }
}
