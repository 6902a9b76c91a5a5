// Private to dcpp: the path arithmetic every layer that names files needs
// (the io file systems, the storage formats, the api layer), written once.
// Plain string functions on '/'-separated paths; no file system access.
#pragma once

#include <string>
#include <utility>

namespace dcpp::paths {

// "a/b/c" → ("a/b", "c"); "c" → (".", "c"); "/c" → ("/", "c"); trailing
// slashes are ignored.
std::pair<std::string, std::string> split_parent(const std::string& path);
inline std::string parent_of(const std::string& path) { return split_parent(path).first; }
inline std::string base_name(const std::string& path) { return split_parent(path).second; }
// "dir/name" (no doubled slash; `name` alone when dir is empty).
std::string join(const std::string& dir, const std::string& name);
// 'text', as error messages quote paths and keys.
inline std::string quoted(const std::string& s) { return "'" + s + "'"; }

}  // namespace dcpp::paths
