// The checkpoint API by path: save and load the native format in a
// directory, and open a checkpoint for reading. This is the header most
// programs include; it brings save()/load() over any storage
// (dcpp/save_load.h), CheckpointReader (dcpp/checkpoint_reader.h) and the
// native format's writer and reader (dcpp/fs_storage.h) along.
//
// save() and load() by path are collective like the storage forms: every
// rank passes the same path. A save into a directory that holds a complete
// checkpoint replaces it atomically at commit. Thread-safety: as save/load.
#pragma once

#include <string>

#include "dcpp/checkpoint_reader.h"
#include "dcpp/fs_storage.h"
#include "dcpp/save_load.h"
#include "dcpp/state_dict.h"

namespace dcpp {

// Saves into the native format at `path` (a directory). Collective.
void save(const StateDict& state_dict, const std::string& path, const SaveOptions& options = {});
// Loads in place from the native checkpoint at `path`. Collective.
void load(StateDict& state_dict, const std::string& path, const LoadOptions& options = {});
// Opens the native checkpoint at `path` for reading (reads and verifies its
// metadata); Error(kNotFound) when nothing complete is there.
CheckpointReader open_checkpoint(const std::string& path, FileSystemPtr filesystem = nullptr);

}  // namespace dcpp
