// Commit without rename: how the native writer commits on a byte store whose
// FileSystem::atomic_rename() is false (an object store). docs/format.md,
// "Commit protocol", specifies it; FileSystemWriter calls these at its
// naming and commit points and nowhere else.
//
// Every rank writes its data object straight under the checkpoint's prefix,
// under a name no other save uses ("data-00003-<16 hex digits>.bin", the
// digits random per rank and save), so a save never overwrites an object
// the current checkpoint reads. The coordinator then writes the metadata
// object: its appearance (or replacement, which the store makes atomic) is
// the commit, exclusive (If-None-Match: *) when no complete checkpoint was
// there, so two saves cannot both create the same checkpoint. After the
// commit, data objects the new metadata does not reference (the replaced
// checkpoint's, a crashed save's) are removed; the same listing finds the
// leftovers for CheckpointManager::cleanup and `dcpp ls`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dcpp/io.h"
#include "dcpp/metadata.h"

namespace dcpp::fs_detail {

// A random token per rank and save.
uint64_t new_save_token();
// "data-00003-0123456789abcdef.bin".
std::string per_save_data_file_name(int rank, uint64_t token);
// "data-<digits>.bin" (the rename protocol) or "data-<digits>-<16 hex>.bin".
bool is_data_file_name(const std::string& name);
// The data files `metadata` reads.
std::vector<std::string> referenced_files(const Metadata& metadata);
// Data files in `dir` that its metadata does not reference (all of them
// when there is no metadata): what crashed or replaced saves left.
std::vector<std::string> unreferenced_data_files(FileSystem& fs, const std::string& dir);
// Writes `bytes` as <dir>/dcpp.metadata: the commit. `exclusive`: the store
// refuses if a metadata object appeared meanwhile (Error(kInvalidArgument)).
void commit_metadata_object(FileSystem& fs, const std::string& dir, const std::vector<std::byte>& bytes,
                            bool exclusive);
// After a commit: removes the data files `metadata` does not reference.
// Best effort (the save stands; the next one or cleanup retries).
void remove_unreferenced_data_files(FileSystem& fs, const std::string& dir, const Metadata& metadata) noexcept;

}  // namespace dcpp::fs_detail
