// The restricted pickle machine (see pickle.h). Opcode values follow
// CPython's Lib/pickletools.py.
#include "storage/torch_dcp/pickle.h"

#include <bit>
#include <cstring>

#include "dcpp/error.h"

namespace dcpp::torch_dcp {

std::string_view py_kind_name(PyKind kind) {
  switch (kind) {
    case PyKind::kNone: return "None";
    case PyKind::kBool: return "bool";
    case PyKind::kInt: return "int";
    case PyKind::kFloat: return "float";
    case PyKind::kStr: return "str";
    case PyKind::kBytes: return "bytes";
    case PyKind::kTuple: return "tuple";
    case PyKind::kList: return "list";
    case PyKind::kDict: return "dict";
    case PyKind::kSet: return "set";
    case PyKind::kGlobal: return "class";
    case PyKind::kCall: return "object";
    case PyKind::kPersId: return "persistent id";
  }
  return "?";
}

void pickle_error(const std::string& source, const std::string& what) {
  throw Error(ErrorCode::kCorrupt, source + ": " + what);
}

class Unpickler {
 public:
  Unpickler(const unsigned char* data, size_t size, const std::string& source, const UnpickleOptions& options)
      : p_(data), size_(size), source_(source), options_(options) {}

  PyGraph run();

 private:
  [[noreturn]] void fail(const std::string& what) const {
    pickle_error(source_, what + " (opcode at byte offset " + std::to_string(op_at_) + ")");
  }
  void need(uint64_t n) const {
    if (n > size_ - at_) fail("truncated pickle: needs " + std::to_string(n) + " more bytes, " +
                              std::to_string(size_ - at_) + " left");
  }
  uint64_t uint(int bytes) {
    need(bytes);
    uint64_t v = 0;
    for (int k = 0; k < bytes; ++k) v |= static_cast<uint64_t>(p_[at_ + k]) << (8 * k);
    at_ += bytes;
    return v;
  }
  std::string take(uint64_t n) {
    need(n);
    std::string s(reinterpret_cast<const char*>(p_ + at_), static_cast<size_t>(n));
    at_ += n;
    return s;
  }
  std::string line() {
    const void* nl = std::memchr(p_ + at_, '\n', size_ - at_);
    if (!nl) fail("unterminated line");
    size_t n = static_cast<const unsigned char*>(nl) - (p_ + at_);
    std::string s(reinterpret_cast<const char*>(p_ + at_), n);
    at_ += n + 1;
    return s;
  }
  uint32_t add(PyNode node) {
    if (g_.nodes_.size() >= size_ + 16) fail("too many objects for the input size");
    g_.nodes_.push_back(std::move(node));
    return static_cast<uint32_t>(g_.nodes_.size() - 1);
  }
  uint32_t add_kind(PyKind kind) {
    PyNode n;
    n.kind = kind;
    return add(std::move(n));
  }
  void push(uint32_t v) { stack_.push_back(v); }
  uint32_t pop() {
    if (stack_.size() <= floor()) fail("stack underflow");
    uint32_t v = stack_.back();
    stack_.pop_back();
    return v;
  }
  uint32_t top() {
    if (stack_.size() <= floor()) fail("stack underflow");
    return stack_.back();
  }
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  std::vector<uint32_t> pop_mark() {
    if (marks_.empty()) fail("no MARK on the stack");
    size_t m = marks_.back();
    marks_.pop_back();
    std::vector<uint32_t> items(stack_.begin() + m, stack_.end());
    stack_.resize(m);
    return items;
  }
  PyNode& node(uint32_t i) { return g_.nodes_[i]; }
  uint32_t global(std::string module, std::string name) {
    if (!options_.allow_global || !options_.allow_global(module, name)) {
      throw Error(ErrorCode::kUnsupported, source_ + ": the pickle refers to class '" + module + "." + name +
                                               "', which is not one PyTorch DCP writes; refusing to load it "
                                               "(byte offset " + std::to_string(op_at_) + ")");
    }
    PyNode n;
    n.kind = PyKind::kGlobal;
    n.s = module + "." + name;
    return add(std::move(n));
  }
  uint32_t integer(int64_t v) {
    PyNode n;
    n.kind = PyKind::kInt;
    n.i = v;
    return add(std::move(n));
  }
  uint32_t long_bytes(uint64_t n) {
    if (n > 8) {
      need(n);
      fail("integer of " + std::to_string(n) + " bytes does not fit 64 bits");
    }
    need(n);
    uint64_t v = 0;
    for (uint64_t k = 0; k < n; ++k) v |= static_cast<uint64_t>(p_[at_ + k]) << (8 * k);
    if (n > 0 && n < 8 && (p_[at_ + n - 1] & 0x80)) v |= ~0ull << (8 * n);  // sign-extend
    at_ += n;
    return integer(static_cast<int64_t>(v));
  }
  uint32_t string_node(PyKind kind, std::string s) {
    PyNode n;
    n.kind = kind;
    n.s = std::move(s);
    return add(std::move(n));
  }
  void memo_put(uint64_t index) {
    if (stack_.size() <= floor()) fail("memo store from an empty stack");
    if (memo_.size() >= size_ + 16) fail("memo too large");
    memo_[static_cast<uint32_t>(index)] = stack_.back();
  }
  void memo_get(uint64_t index) {
    auto it = memo_.find(static_cast<uint32_t>(index));
    if (it == memo_.end()) fail("memo index " + std::to_string(index) + " was never stored");
    push(it->second);
  }
  void set_items(uint32_t target, const std::vector<uint32_t>& kv) {
    if (kv.size() % 2) fail("odd number of items for SETITEMS");
    PyNode& t = node(target);
    if (t.kind == PyKind::kDict) {
      t.items.insert(t.items.end(), kv.begin(), kv.end());
    } else if (t.kind == PyKind::kCall) {
      // A dict subclass (OrderedDict) built by REDUCE, then filled.
      t.items.insert(t.items.end(), kv.begin(), kv.end());
    } else {
      fail("SETITEMS on a " + std::string(py_kind_name(t.kind)));
    }
  }
  void append_items(uint32_t target, const std::vector<uint32_t>& values) {
    PyNode& t = node(target);
    if (t.kind != PyKind::kList) fail("APPENDS on a " + std::string(py_kind_name(t.kind)));
    t.items.insert(t.items.end(), values.begin(), values.end());
  }
  uint32_t make_seq(PyKind kind, std::vector<uint32_t> items) {
    PyNode n;
    n.kind = kind;
    n.items = std::move(items);
    return add(std::move(n));
  }
  uint32_t make_call(uint32_t callable, uint32_t args) {
    if (node(callable).kind != PyKind::kGlobal) fail("call of a " + std::string(py_kind_name(node(callable).kind)));
    if (node(args).kind != PyKind::kTuple) fail("call arguments are a " + std::string(py_kind_name(node(args).kind)));
    PyNode n;
    n.kind = PyKind::kCall;
    n.items = {callable, args};
    return add(std::move(n));
  }

  const unsigned char* p_;
  size_t size_;
  size_t at_ = 0;
  size_t op_at_ = 0;
  const std::string& source_;
  const UnpickleOptions& options_;
  PyGraph g_;
  std::vector<uint32_t> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint32_t, uint32_t> memo_;
};

PyGraph Unpickler::run() {
  if (size_ > options_.max_input_bytes) {
    pickle_error(source_, "pickle of " + std::to_string(size_) + " bytes exceeds the limit of " +
                              std::to_string(options_.max_input_bytes));
  }
  if (size_ < 2 || p_[0] != 0x80) pickle_error(source_, "not a pickle of protocol 2 or later (bad magic)");
  while (true) {
    op_at_ = at_;
    if (at_ >= size_) fail("pickle ends without STOP");
    const uint8_t code = p_[at_++];
    switch (code) {
      case 0x80: {  // PROTO
        uint64_t proto = uint(1);
        if (proto < 2 || proto > 5) {
          throw Error(ErrorCode::kUnsupported, source_ + ": pickle protocol " + std::to_string(proto) +
                                                   " (supported: 2 to 5)");
        }
        break;
      }
      case 0x95: uint(8); break;  // FRAME: framing is only a buffering hint
      case '.': {                  // STOP
        if (stack_.size() != 1 || !marks_.empty()) fail("STOP with " + std::to_string(stack_.size()) + " items on the stack");
        g_.root_ = stack_.back();
        return std::move(g_);
      }
      case '(': marks_.push_back(stack_.size()); break;
      case '0': pop(); break;
      case '1': pop_mark(); break;
      case '2': push(top()); break;
      case 'N': push(add_kind(PyKind::kNone)); break;
      case 0x88:
      case 0x89: {
        PyNode n;
        n.kind = PyKind::kBool;
        n.b = code == 0x88;
        push(add(std::move(n)));
        break;
      }
      case 'J': push(integer(static_cast<int32_t>(static_cast<uint32_t>(uint(4))))); break;
      case 'K': push(integer(static_cast<int64_t>(uint(1)))); break;
      case 'M': push(integer(static_cast<int64_t>(uint(2)))); break;
      case 0x8a: push(long_bytes(uint(1))); break;
      case 0x8b: push(long_bytes(uint(4))); break;
      case 'G': {
        uint64_t bits = 0;
        need(8);
        for (int k = 0; k < 8; ++k) bits = (bits << 8) | p_[at_ + k];
        at_ += 8;
        PyNode n;
        n.kind = PyKind::kFloat;
        n.f = std::bit_cast<double>(bits);
        push(add(std::move(n)));
        break;
      }
      case 'X': push(string_node(PyKind::kStr, take(uint(4)))); break;
      case 0x8c: push(string_node(PyKind::kStr, take(uint(1)))); break;
      case 0x8d: push(string_node(PyKind::kStr, take(uint(8)))); break;
      case 'T': push(string_node(PyKind::kStr, take(uint(4)))); break;
      case 'U': push(string_node(PyKind::kStr, take(uint(1)))); break;
      case 'B': push(string_node(PyKind::kBytes, take(uint(4)))); break;
      case 'C': push(string_node(PyKind::kBytes, take(uint(1)))); break;
      case 0x8e: push(string_node(PyKind::kBytes, take(uint(8)))); break;
      case 0x96: push(string_node(PyKind::kBytes, take(uint(8)))); break;  // BYTEARRAY8
      case ')': push(make_seq(PyKind::kTuple, {})); break;
      case 0x85: {
        uint32_t a = pop();
        push(make_seq(PyKind::kTuple, {a}));
        break;
      }
      case 0x86: {
        uint32_t b = pop(), a = pop();
        push(make_seq(PyKind::kTuple, {a, b}));
        break;
      }
      case 0x87: {
        uint32_t c = pop(), b = pop(), a = pop();
        push(make_seq(PyKind::kTuple, {a, b, c}));
        break;
      }
      case 't': push(make_seq(PyKind::kTuple, pop_mark())); break;
      case ']': push(make_seq(PyKind::kList, {})); break;
      case 'l': push(make_seq(PyKind::kList, pop_mark())); break;
      case '}': push(make_seq(PyKind::kDict, {})); break;
      case 'd': {
        auto kv = pop_mark();
        if (kv.size() % 2) fail("odd number of items for DICT");
        push(make_seq(PyKind::kDict, std::move(kv)));
        break;
      }
      case 0x8f: push(make_seq(PyKind::kSet, {})); break;
      case 0x91: push(make_seq(PyKind::kSet, pop_mark())); break;
      case 0x90: {  // ADDITEMS
        auto values = pop_mark();
        uint32_t t = top();
        if (node(t).kind != PyKind::kSet) fail("ADDITEMS on a " + std::string(py_kind_name(node(t).kind)));
        node(t).items.insert(node(t).items.end(), values.begin(), values.end());
        break;
      }
      case 'a': {
        uint32_t v = pop();
        append_items(top(), {v});
        break;
      }
      case 'e': {
        auto values = pop_mark();
        append_items(top(), values);
        break;
      }
      case 's': {
        uint32_t v = pop(), k = pop();
        set_items(top(), {k, v});
        break;
      }
      case 'u': {
        auto kv = pop_mark();
        set_items(top(), kv);
        break;
      }
      case 'c': {
        std::string module = line();
        std::string name = line();
        push(global(std::move(module), std::move(name)));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        uint32_t name = pop(), module = pop();
        if (node(name).kind != PyKind::kStr || node(module).kind != PyKind::kStr) fail("STACK_GLOBAL of non-strings");
        push(global(node(module).s, node(name).s));
        break;
      }
      case 'R': {
        uint32_t args = pop(), callable = pop();
        push(make_call(callable, args));
        break;
      }
      case 0x81: {  // NEWOBJ
        uint32_t args = pop(), cls = pop();
        push(make_call(cls, args));
        break;
      }
      case 0x92: {  // NEWOBJ_EX
        uint32_t kwargs = pop(), args = pop(), cls = pop();
        if (node(kwargs).kind != PyKind::kDict || !node(kwargs).items.empty()) fail("NEWOBJ_EX with keyword arguments");
        push(make_call(cls, args));
        break;
      }
      case 'b': {  // BUILD
        uint32_t state = pop();
        uint32_t obj = top();
        if (node(obj).kind != PyKind::kCall) fail("BUILD on a " + std::string(py_kind_name(node(obj).kind)));
        node(obj).state = state;
        break;
      }
      case 'Q': {
        if (!options_.allow_persistent_id) fail("persistent id (BINPERSID) not expected here");
        uint32_t pid = pop();
        push(make_seq(PyKind::kPersId, {pid}));
        break;
      }
      case 'q': memo_put(uint(1)); break;
      case 'r': memo_put(uint(4)); break;
      case 0x94: memo_put(memo_.size()); break;
      case 'h': memo_get(uint(1)); break;
      case 'j': memo_get(uint(4)); break;
      default: {
        char buf[8];
        std::snprintf(buf, sizeof buf, "0x%02x", code);
        throw Error(ErrorCode::kUnsupported, source_ + ": pickle opcode " + buf + " at byte offset " +
                                                 std::to_string(op_at_) +
                                                 " is not supported (only protocol 2-5 data opcodes are)");
      }
    }
  }
}

PyGraph unpickle(const void* data, size_t size, const std::string& source, const UnpickleOptions& options) {
  Unpickler u(static_cast<const unsigned char*>(data), size, source, options);
  return u.run();
}

// ---- writer ----

Pickler::Pickler() {
  op(0x80);
  op(2);
}

void Pickler::u32(uint32_t v) {
  for (int k = 0; k < 4; ++k) out_.push_back(static_cast<char>((v >> (8 * k)) & 0xff));
}

void Pickler::none() { op('N'); }
void Pickler::boolean(bool v) { op(v ? 0x88 : 0x89); }

void Pickler::integer(int64_t v) {
  if (v >= 0 && v < 256) {
    op('K');
    op(static_cast<uint8_t>(v));
  } else if (v >= 0 && v < 65536) {
    op('M');
    op(static_cast<uint8_t>(v & 0xff));
    op(static_cast<uint8_t>(v >> 8));
  } else if (v >= INT32_MIN && v <= INT32_MAX) {
    op('J');
    u32(static_cast<uint32_t>(static_cast<int32_t>(v)));
  } else {
    // LONG1: minimal little-endian two's complement.
    std::string bytes;
    uint64_t u = static_cast<uint64_t>(v);
    for (int k = 0; k < 8; ++k) bytes.push_back(static_cast<char>((u >> (8 * k)) & 0xff));
    while (bytes.size() > 1) {
      const uint8_t last = static_cast<uint8_t>(bytes.back());
      const uint8_t prev = static_cast<uint8_t>(bytes[bytes.size() - 2]);
      if ((last == 0 && !(prev & 0x80)) || (last == 0xff && (prev & 0x80))) {
        bytes.pop_back();
      } else {
        break;
      }
    }
    op(0x8a);
    op(static_cast<uint8_t>(bytes.size()));
    out_ += bytes;
  }
}

void Pickler::real(double v) {
  op('G');
  uint64_t bits = std::bit_cast<uint64_t>(v);
  for (int k = 7; k >= 0; --k) out_.push_back(static_cast<char>((bits >> (8 * k)) & 0xff));
}

void Pickler::str(std::string_view v) {
  op('X');
  u32(static_cast<uint32_t>(v.size()));
  out_.append(v);
}

void Pickler::bytes(const void* data, size_t size) {
  global("_codecs", "encode");
  std::string latin1;
  latin1.reserve(size);
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t k = 0; k < size; ++k) {
    if (p[k] < 0x80) {
      latin1.push_back(static_cast<char>(p[k]));
    } else {
      latin1.push_back(static_cast<char>(0xc0 | (p[k] >> 6)));
      latin1.push_back(static_cast<char>(0x80 | (p[k] & 0x3f)));
    }
  }
  str(latin1);
  str("latin1");
  tuple(2);
  reduce();
}

void Pickler::global(std::string_view module, std::string_view name) {
  std::string key = std::string(module) + "\n" + std::string(name);
  auto it = memo_.find(key);
  if (it != memo_.end()) {
    if (it->second < 256) {
      op('h');
      op(static_cast<uint8_t>(it->second));
    } else {
      op('j');
      u32(it->second);
    }
    return;
  }
  op('c');
  out_ += key;
  out_.push_back('\n');
  const uint32_t index = static_cast<uint32_t>(memo_.size());
  memo_.emplace(std::move(key), index);
  if (index < 256) {
    op('q');
    op(static_cast<uint8_t>(index));
  } else {
    op('r');
    u32(index);
  }
}

void Pickler::mark() { op('('); }
void Pickler::tuple_from_mark() { op('t'); }
void Pickler::tuple(size_t n) {
  static const uint8_t codes[] = {')', 0x85, 0x86, 0x87};
  op(codes[n]);
}
void Pickler::empty_list() { op(']'); }
void Pickler::appends_from_mark() { op('e'); }
void Pickler::empty_dict() { op('}'); }
void Pickler::setitems_from_mark() { op('u'); }
void Pickler::reduce() { op('R'); }
void Pickler::newobj() { op(0x81); }
void Pickler::build() { op('b'); }
void Pickler::binpersid() { op('Q'); }
void Pickler::stop() { op('.'); }

}  // namespace dcpp::torch_dcp
