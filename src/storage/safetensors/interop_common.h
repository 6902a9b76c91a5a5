// Private helpers shared by the safetensors and torch_dcp storages: staged
// directory commits, strided box reads from a byte range of a file, and
// small JSON/string utilities.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dcpp/io.h"
#include "dcpp/metadata.h"
#include "dcpp/tensor.h"

namespace dcpp::interop {

std::string join(const std::string& dir, const std::string& name);
std::string quoted(const std::string& s);

// A save into `path` is staged in staging_path(path) (fs_storage.h) and swapped
// in at commit. `ours` says whether a directory entry name belongs to this
// format; a target holding anything else is refused (Error(kInvalidArgument)),
// never replaced. prepare_staging checks the target and creates an empty
// staging directory; commit_staging swaps it into place atomically when the
// file system can (rename_exchange), removing the old checkpoint after.
void prepare_staging(FileSystem& fs, const std::string& path, bool overwrite,
                     const std::function<bool(const std::string&)>& ours, const std::string& format_name);
void commit_staging(FileSystem& fs, const std::string& path);
void abort_staging(FileSystem& fs, const std::string& path) noexcept;

// Reads the box [box_offsets, box_offsets + box_lengths) of a tensor stored
// at byte `base` of `file` (strided: element (i0, i1, ...) lies at element
// storage_offset + sum(i_d * strides[d])), into `dest` (converting dtype).
// Every touched byte must lie below base + limit (Error(kCorrupt) naming
// `source` otherwise). Reads the touched span in pieces of bounded size.
void read_strided_box(RandomAccessFile& file, const std::string& source, uint64_t base, uint64_t limit,
                     DType dtype, const Shape& strides, int64_t storage_offset, const Shape& box_offsets,
                     const Shape& box_lengths, const Tensor& dest);

// Writes the whole of `data` at `offset` (Error(kIo) on failure).
void write_at(WritableFile& file, const void* data, size_t length, uint64_t offset);

// Numbers as decimal text, and a JSON string literal.
std::string json_string(const std::string& s);
std::string shape_json(const Shape& shape);

// Hex encoding for opaque bytes carried in JSON.
std::string to_hex(const void* data, size_t size);
bool from_hex(const std::string& hex, std::vector<std::byte>& out);

}  // namespace dcpp::interop
