// Private to the torch_dcp storage: a restricted pickle reader and a small
// pickle writer, enough for PyTorch DCP's `.metadata` and torch.save's
// `data.pkl`.
//
// The reader never executes anything. It runs the pickle machine over an
// object graph of plain nodes: a GLOBAL becomes a node naming the class (only
// if the caller's allowlist accepts it, else Error(kUnsupported) naming the
// class), REDUCE and NEWOBJ become "call" nodes holding the callable and its
// arguments, BUILD attaches the state to the call node. The caller then
// interprets the graph, checking every node's kind. Nodes live in one arena
// and refer to each other by index, so cycles or deep nesting cannot
// overflow the stack or leak. Every length is checked against the bytes
// left before anything is allocated; the node count is bounded by the input
// size. Protocols 2 to 5 are accepted (the text opcodes of protocols 0 and 1
// are refused with Error(kUnsupported)). Not thread-safe; graphs are values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace dcpp::torch_dcp {

enum class PyKind : uint8_t {
  kNone, kBool, kInt, kFloat, kStr, kBytes, kTuple, kList, kDict, kSet,
  kGlobal,   // s = "module.name"
  kCall,     // items = {callable, args tuple}; state = BUILD state (or kNoNode); from REDUCE/NEWOBJ
  kPersId,   // items = {pid}
};
std::string_view py_kind_name(PyKind kind);

inline constexpr uint32_t kNoNode = 0xffffffffu;

struct PyNode {
  PyKind kind = PyKind::kNone;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;               // str (UTF-8), bytes, or a global's "module.name"
  std::vector<uint32_t> items; // tuple/list/set elements; dict keys and values interleaved
  uint32_t state = kNoNode;
};

class PyGraph {
 public:
  const PyNode& at(uint32_t index) const { return nodes_[index]; }
  uint32_t root() const { return root_; }
  size_t size() const { return nodes_.size(); }

 private:
  friend class Unpickler;
  std::vector<PyNode> nodes_;
  uint32_t root_ = kNoNode;
};

struct UnpickleOptions {
  // Decides whether GLOBAL module.name may appear; false → Error(kUnsupported).
  std::function<bool(std::string_view module, std::string_view name)> allow_global;
  bool allow_persistent_id = false;
  // Hard cap on the input size; larger input is Error(kCorrupt).
  uint64_t max_input_bytes = 1ull << 30;
};

// Parses a whole pickle. `source` names it in error messages (with the byte
// offset of the failing opcode). Error(kCorrupt) for malformed input,
// Error(kUnsupported) for a disallowed class or opcode.
PyGraph unpickle(const void* data, size_t size, const std::string& source, const UnpickleOptions& options);

// Convenience for interpreters: throw Error(kCorrupt) "<source>: <what>".
[[noreturn]] void pickle_error(const std::string& source, const std::string& what);

// A writer of protocol-2 pickles: the caller emits opcodes through typed
// calls, in the order Python's pickler would (MARK, items, TUPLE...).
// Globals are memoized so that repeated classes cost two bytes each.
class Pickler {
 public:
  Pickler();  // emits PROTO 2
  void none();
  void boolean(bool v);
  void integer(int64_t v);
  void real(double v);
  void str(std::string_view v);
  // Python bytes, as protocol 2 writes them: _codecs.encode(latin-1 str, "latin1").
  void bytes(const void* data, size_t size);
  void global(std::string_view module, std::string_view name);
  void mark();
  void tuple_from_mark();
  void tuple(size_t n);  // n in 0..3: pops n items into a tuple (EMPTY_TUPLE/TUPLE1..3)
  void empty_list();
  void appends_from_mark();
  void empty_dict();
  void setitems_from_mark();
  void reduce();      // callable, args → callable(*args)
  void newobj();      // cls, args → cls.__new__(cls, *args)
  void build();       // obj, state → obj with state
  void binpersid();   // pid → persistent_load(pid)
  void stop();        // emits STOP; the pickle is complete
  const std::string& data() const { return out_; }

 private:
  void op(uint8_t code) { out_.push_back(static_cast<char>(code)); }
  void u32(uint32_t v);
  std::string out_;
  std::unordered_map<std::string, uint32_t> memo_;
};

}  // namespace dcpp::torch_dcp
