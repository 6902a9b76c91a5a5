// The parsers under hostile input (safetensors headers, pickles, zip
// archives, DCP checkpoints) and the writers' round trips. Every hostile
// case must end in a dcpp::Error with the right code, never a crash or a
// huge allocation; the random mutation cases print their seed.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "dcpp/checkpoint.h"
#include "dcpp/error.h"
#include "dcpp/safetensors_storage.h"
#include "dcpp/torch_dcp_storage.h"
#include "interop/interop_support.h"
#include "storage/torch_dcp/pickle.h"
#include "storage/torch_dcp/zip.h"
#include "support/distributed.h"

namespace dcpp {
namespace {

using interop_test::data_dir;
using interop_test::slurp;
using interop_test::spit;

template <typename F>
ErrorCode code_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  ADD_FAILURE() << "no dcpp::Error thrown";
  return ErrorCode::kInternal;
}

template <typename F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.message();
  }
  return "";
}

// ---------------- CRC-32 and zip ----------------

TEST(interop_Zip, Crc32KnownValues) {
  // The standard check value of CRC-32/ISO-HDLC, and the empty string.
  EXPECT_EQ(torch_dcp::crc32("123456789", 9), 0xCBF43926u);
  EXPECT_EQ(torch_dcp::crc32("", 0), 0u);
  std::string big(1000, 'a');
  // Continuation equals one pass.
  EXPECT_EQ(torch_dcp::crc32(big.data() + 500, 500, torch_dcp::crc32(big.data(), 500)),
            torch_dcp::crc32(big.data(), 1000));
}

std::string make_zip() {
  std::string out;
  torch_dcp::ZipWriter w([&](const void* d, size_t n) { out.append(static_cast<const char*>(d), n); });
  w.add("archive/data.pkl", "hello", 5);
  w.add("archive/data/0", "0123456789abcdef", 16);
  w.finish();
  return out;
}

TEST(interop_Zip, WriterOutputReadsBackAligned) {
  testing::TempDir tmp;
  const std::string path = tmp.path() + "/a.zip";
  std::string prefix(100, 'x');  // the archive sits inside a larger file, as DCP items do
  spit(path, prefix + make_zip() + "tail");
  auto fs = default_file_system();
  std::unique_ptr<RandomAccessFile> f = fs->open_read(path);
  const uint64_t len = make_zip().size();
  torch_dcp::ZipReader z(*f, 100, len, "test");
  ASSERT_EQ(z.entries().size(), 2u);
  EXPECT_EQ(z.prefix(), "archive/");
  const auto* e = z.find("data/0");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->data_offset % 64, 0u);
  auto bytes = z.read_all(*e, 1 << 20);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()), "0123456789abcdef");
}

TEST(interop_Zip, HostileArchives) {
  testing::TempDir tmp;
  auto fs = default_file_system();
  auto open_zip = [&](const std::string& bytes) {
    spit(tmp.path() + "/z", bytes);
    std::unique_ptr<RandomAccessFile> f = fs->open_read(tmp.path() + "/z");
    torch_dcp::ZipReader z(*f, 0, bytes.size(), "z");
    for (const auto& e : z.entries()) z.read_all(e, 1 << 20);
  };
  EXPECT_EQ(code_of([&] { open_zip("not a zip at all, just some bytes...."); }), ErrorCode::kCorrupt);
  EXPECT_EQ(code_of([&] { open_zip("PK"); }), ErrorCode::kCorrupt);
  const std::string good = make_zip();
  // Central directory offset past the end.
  std::string bad = good;
  const size_t eocd = bad.size() - 22;
  bad[eocd + 16] = '\xff';
  bad[eocd + 17] = '\xff';
  EXPECT_EQ(code_of([&] { open_zip(bad); }), ErrorCode::kCorrupt);
  // An entry's size pointing past the archive.
  bad = good;
  const size_t cd = bad.find("PK\x01\x02");
  ASSERT_NE(cd, std::string::npos);
  bad[cd + 20] = bad[cd + 24] = '\x7f';
  bad[cd + 23] = bad[cd + 27] = '\x7f';
  EXPECT_EQ(code_of([&] { open_zip(bad); }), ErrorCode::kCorrupt);
  // A corrupted data byte fails the CRC.
  bad = good;
  bad[bad.find("0123")] = 'X';
  EXPECT_EQ(code_of([&] { open_zip(bad); }), ErrorCode::kCorrupt);
  // Compressed entries are not torch.save's.
  bad = good;
  bad[cd + 10] = 8;
  EXPECT_EQ(code_of([&] { open_zip(bad); }), ErrorCode::kUnsupported);
}

// ---------------- pickle ----------------

torch_dcp::UnpickleOptions allow_only(std::string module) {
  torch_dcp::UnpickleOptions o;
  o.allow_global = [module](std::string_view m, std::string_view) { return m == module; };
  return o;
}

TEST(interop_Pickle, ReadsWhatThePicklerWrites) {
  torch_dcp::Pickler p;
  p.global("mod", "Cls");
  p.mark();
  p.integer(-5);
  p.integer(300);
  p.integer(1ll << 40);
  p.integer(-(1ll << 40));
  p.real(0.1);
  p.str("héllo");
  p.boolean(true);
  p.none();
  p.tuple_from_mark();
  p.reduce();
  p.stop();
  auto g = torch_dcp::unpickle(p.data().data(), p.data().size(), "t", allow_only("mod"));
  const auto& root = g.at(g.root());
  ASSERT_EQ(root.kind, torch_dcp::PyKind::kCall);
  EXPECT_EQ(g.at(root.items[0]).s, "mod.Cls");
  const auto& args = g.at(root.items[1]);
  ASSERT_EQ(args.items.size(), 8u);
  EXPECT_EQ(g.at(args.items[0]).i, -5);
  EXPECT_EQ(g.at(args.items[1]).i, 300);
  EXPECT_EQ(g.at(args.items[2]).i, 1ll << 40);
  EXPECT_EQ(g.at(args.items[3]).i, -(1ll << 40));
  EXPECT_EQ(g.at(args.items[4]).f, 0.1);
  EXPECT_EQ(g.at(args.items[5]).s, "héllo");
  EXPECT_TRUE(g.at(args.items[6]).b);
  EXPECT_EQ(g.at(args.items[7]).kind, torch_dcp::PyKind::kNone);
}

TEST(interop_Pickle, ReadsProtocol4FromCPython) {
  // pickle.dumps({"a": [1, 2.5], "b": (None, True)}, protocol=4) from CPython 3.11.
  const unsigned char bytes[] = {
      0x80, 0x04, 0x95, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x7d, 0x94, 0x28, 0x8c, 0x01, 0x61, 0x94,
      0x5d, 0x94, 0x28, 0x4b, 0x01, 0x47, 0x40, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x65, 0x8c, 0x01, 0x62,
      0x94, 0x4e, 0x88, 0x86, 0x94, 0x75, 0x2e};
  auto g = torch_dcp::unpickle(bytes, sizeof bytes, "t", {});
  const auto& d = g.at(g.root());
  ASSERT_EQ(d.kind, torch_dcp::PyKind::kDict);
  ASSERT_EQ(d.items.size(), 4u);
  EXPECT_EQ(g.at(d.items[0]).s, "a");
  const auto& list = g.at(d.items[1]);
  ASSERT_EQ(list.items.size(), 2u);
  EXPECT_EQ(g.at(list.items[0]).i, 1);
  EXPECT_EQ(g.at(list.items[1]).f, 2.5);
  const auto& tup = g.at(d.items[3]);
  ASSERT_EQ(tup.items.size(), 2u);
  EXPECT_TRUE(g.at(tup.items[1]).b);
}

TEST(interop_Pickle, HostileInput) {
  auto parse = [](const std::string& s) {
    torch_dcp::unpickle(s.data(), s.size(), "hostile", allow_only("torch"));
  };
  EXPECT_EQ(code_of([&] { parse(""); }), ErrorCode::kCorrupt);
  EXPECT_EQ(code_of([&] { parse("garbage"); }), ErrorCode::kCorrupt);  // bad magic
  EXPECT_EQ(code_of([&] { parse(std::string("\x80\x02", 2)); }), ErrorCode::kCorrupt);  // no STOP
  // The classic payload: os.system is refused before anything else happens, and named.
  const std::string evil = std::string("\x80\x02") + "cos\nsystem\nX\x02\x00\x00\x00ls\x85R.";
  EXPECT_EQ(code_of([&] { parse(evil); }), ErrorCode::kUnsupported);
  EXPECT_NE(message_of([&] { parse(evil); }).find("os.system"), std::string::npos);
  // A string claiming 4 GiB.
  EXPECT_EQ(code_of([&] { parse(std::string("\x80\x02X\xff\xff\xff\xff", 7)); }), ErrorCode::kCorrupt);
  EXPECT_EQ(code_of([&] { parse(std::string("\x80\x02\x8e\xff\xff\xff\xff\xff\xff\xff\x7f", 11)); }),
            ErrorCode::kCorrupt);
  // A memo slot never stored; stack underflow; odd SETITEMS; BUILD on an int.
  EXPECT_EQ(code_of([&] { parse(std::string("\x80\x02h\x05.", 5)); }), ErrorCode::kCorrupt);
  EXPECT_EQ(code_of([&] { parse(std::string("\x80\x02t.", 4)); }), ErrorCode::kCorrupt);
  EXPECT_EQ(code_of([&] { parse(std::string("\x80\x02R.", 4)); }), ErrorCode::kCorrupt);
  EXPECT_EQ(code_of([&] { parse(std::string("\x80\x02}(K\x01u.", 8)); }), ErrorCode::kCorrupt);
  EXPECT_EQ(code_of([&] { parse(std::string("\x80\x02K\x01K\x02" "b.", 8)); }), ErrorCode::kCorrupt);
  // A 9-byte integer; protocol 6; protocol-0 text opcodes; out-of-band buffers.
  EXPECT_EQ(code_of([&] { parse(std::string("\x80\x02\x8a\x09" "123456789.", 14)); }), ErrorCode::kCorrupt);
  EXPECT_EQ(code_of([&] { parse(std::string("\x80\x06N.", 4)); }), ErrorCode::kUnsupported);
  EXPECT_EQ(code_of([&] { parse(std::string("\x80\x02I1\n.", 6)); }), ErrorCode::kUnsupported);
  EXPECT_EQ(code_of([&] { parse(std::string("\x80\x05\x97.", 4)); }), ErrorCode::kUnsupported);
  // Persistent ids are refused unless asked for.
  EXPECT_EQ(code_of([&] { parse(std::string("\x80\x02K\x01Q.", 6)); }), ErrorCode::kCorrupt);
  // A self-referencing list (a cycle) parses without recursion or leaks.
  const std::string cyc("\x80\x02]q\x00h\x00" "a.", 9);
  EXPECT_NO_THROW(parse(cyc));
}

// ---------------- safetensors headers ----------------

std::string st_file(const std::string& json, size_t data_bytes) {
  std::string out(8, '\0');
  uint64_t n = json.size();
  std::memcpy(out.data(), &n, 8);
  return out + json + std::string(data_bytes, '\0');
}

TEST(interop_SafetensorsHeader, ParsesAndValidates) {
  const std::string ok = R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
                         R"("b":{"dtype":"BOOL","shape":[3],"data_offsets":[16,19]},)"
                         R"("c":{"dtype":"F8_E5M2","shape":[],"data_offsets":[19,20]}})";
  auto h = parse_safetensors_header(ok, 8 + ok.size() + 20, "f");
  ASSERT_EQ(h.tensors.size(), 3u);
  EXPECT_EQ(h.tensors[1].dtype, DType::kBool);
  EXPECT_EQ(h.tensors[2].dtype, DType::kFloat8E5M2);
  EXPECT_EQ(h.metadata.at("format"), "pt");
  EXPECT_EQ(h.data_start, 8 + ok.size());

  auto bad = [](const std::string& json, uint64_t data) {
    return code_of([&] { parse_safetensors_header(json, 8 + json.size() + data, "f"); });
  };
  EXPECT_EQ(bad("[1,2]", 0), ErrorCode::kCorrupt);                      // bad magic
  EXPECT_EQ(bad("{\"a\":", 0), ErrorCode::kCorrupt);                     // bad JSON
  EXPECT_EQ(bad(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4), ErrorCode::kCorrupt);  // past end
  EXPECT_EQ(bad(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 8), ErrorCode::kCorrupt);  // size
  EXPECT_EQ(bad(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}})",
                8),
            ErrorCode::kCorrupt);  // overlap
  EXPECT_EQ(bad(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                8),
            ErrorCode::kCorrupt);  // duplicate key
  EXPECT_EQ(bad(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,0]}})", 0),
            ErrorCode::kCorrupt);  // numel × size overflow
  EXPECT_EQ(bad(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})", 0), ErrorCode::kCorrupt);
  EXPECT_EQ(bad(R"({"a":{"dtype":"Q7","shape":[1],"data_offsets":[0,1]}})", 1), ErrorCode::kCorrupt);
  EXPECT_EQ(bad(R"({"a":{"dtype":"U32","shape":[1],"data_offsets":[0,4]}})", 4), ErrorCode::kUnsupported);
  EXPECT_EQ(bad(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", 4), ErrorCode::kCorrupt);
  EXPECT_EQ(bad(R"({"a":{"dtype":"F32","shape":[1]}})", 4), ErrorCode::kCorrupt);

  // Header length fields: beyond the cap, beyond the file.
  testing::TempDir tmp;
  auto fs = default_file_system();
  std::string f = st_file("{}", 0);
  uint64_t huge = 1ull << 40;
  std::memcpy(f.data(), &huge, 8);
  spit(tmp.path() + "/h.safetensors", f);
  EXPECT_EQ(code_of([&] { read_safetensors_header(*fs, tmp.path() + "/h.safetensors"); }), ErrorCode::kCorrupt);
  f = st_file("{}", 0);
  uint64_t past = 1000;
  std::memcpy(f.data(), &past, 8);
  spit(tmp.path() + "/h.safetensors", f);
  EXPECT_EQ(code_of([&] { read_safetensors_header(*fs, tmp.path() + "/h.safetensors"); }), ErrorCode::kCorrupt);
  spit(tmp.path() + "/h.safetensors", "abc");
  EXPECT_EQ(code_of([&] { read_safetensors_header(*fs, tmp.path() + "/h.safetensors"); }), ErrorCode::kCorrupt);
}

TEST(interop_SafetensorsHeader, ShardedChunksMustTile) {
  testing::TempDir tmp;
  // Two files each claiming offset 0 of "w": overlapping chunks.
  const std::string json =
      R"({"__metadata__":{"DCP_SHARDING_INFO":"{\"w\":{\"saved_offsets\":[0]}}"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  spit(tmp.path() + "/a.safetensors", st_file(json, 8));
  spit(tmp.path() + "/b.safetensors", st_file(json, 8));
  EXPECT_EQ(code_of([&] { SafetensorsReader(tmp.path()).read_metadata(); }), ErrorCode::kCorrupt);
}

// ---------------- safetensors writer ----------------

// (Every dtype and value kind round trips in both layouts: tests/conformance.)
TEST(interop_SafetensorsWriter, TorchCompatibleRefusesBoolAndFloat8BeforeWriting) {
  testing::TempDir tmp;
  for (DType d : {DType::kBool, DType::kFloat8E4M3FN, DType::kFloat8E5M2}) {
    StateDict sd{{"ok", Tensor::zeros({2})}, {"t", Tensor::zeros({3}, d)}};
    SafetensorsWriterOptions o;
    o.torch_compatible = true;
    SafetensorsWriter w(tmp.path() + "/compat", o);
    const std::string msg = message_of([&] { save(sd, w); });
    EXPECT_NE(msg.find("PyTorch"), std::string::npos) << dtype_name(d) << ": " << msg;
    EXPECT_NE(msg.find("'t'"), std::string::npos) << dtype_name(d) << ": " << msg;
    EXPECT_FALSE(default_file_system()->exists(tmp.path() + "/compat")) << dtype_name(d);
  }
}

TEST(interop_SafetensorsWriter, ShardedLayoutOnThreeRanksHasPyTorchNamesAndOffsets) {
  testing::TempDir tmp;
  const std::string path = tmp.path() + "/ck";
  Tensor full = Tensor::arange(10 * 4).view({10, 4});
  testing::for_each_world_size({3}, [&](CommPtr comm) {
    DeviceMesh mesh = init_device_mesh(comm, "cpu", {3});
    StateDict sd{{"w", distribute_tensor(full, mesh, {Shard{0}})}};
    SafetensorsWriterOptions o;
    o.layout = SafetensorsLayout::kSharded;
    SafetensorsWriter w(path, o);
    SaveOptions so;
    so.comm = comm;
    save(sd, w, so);
  });
  auto fs = default_file_system();
  EXPECT_FALSE(fs->exists(path + "/model.safetensors.index.json"));
  // 10 rows over 3 ranks: 4, 4, 2 at offsets 0, 4, 8 (docs/design.md §2); shards numbered from 1.
  const int64_t offs[] = {0, 4, 8}, rows[] = {4, 4, 2};
  for (int r = 0; r < 3; ++r) {
    char name[80];
    std::snprintf(name, sizeof name, "/shard-%05d-model-00001-of-00001.safetensors", r + 1);
    auto h = read_safetensors_header(*fs, path + name);
    ASSERT_EQ(h.tensors.size(), 1u);
    EXPECT_EQ(h.tensors[0].shape, (Shape{rows[r], 4}));
    EXPECT_EQ(h.metadata.at("DCP_SHARDING_INFO"),
              "{\"w\":{\"saved_offsets\":[" + std::to_string(offs[r]) + ",0]}}");
    EXPECT_EQ(h.metadata.at("format"), "pt");
  }
  CheckpointReader r(std::make_unique<SafetensorsReader>(path));
  EXPECT_TRUE(equal(r.read("w"), full));
}

// ---------------- PyTorch DCP under hostile input ----------------

std::string copy_fixture(const std::string& tmp, const std::string& name) {
  const std::string dst = tmp + "/" + name;
  auto fs = default_file_system();
  fs->create_directories(dst);
  for (const auto& f : fs->list_dir(data_dir() + "/" + name)) {
    spit(dst + "/" + f, slurp(data_dir() + "/" + name + "/" + f));
  }
  return dst;
}

void read_everything(const std::string& path) {
  CheckpointReader r(std::make_unique<TorchDcpReader>(path));
  for (const auto& k : r.tensor_keys()) r.read(k);
  for (const auto& k : r.value_keys()) r.value(k);
}

TEST(interop_TorchDcpHostile, TruncatedDataFileAndMetadata) {
  testing::TempDir tmp;
  const std::string ck = copy_fixture(tmp.path(), "dcp_mlp_ws2");
  std::string data = slurp(ck + "/__1_0.distcp");
  spit(ck + "/__1_0.distcp", data.substr(0, data.size() / 2));  // items now end past the file
  EXPECT_EQ(code_of([&] { read_everything(ck); }), ErrorCode::kCorrupt);
  spit(ck + "/__1_0.distcp", data);
  const std::string md = slurp(ck + "/.metadata");
  spit(ck + "/.metadata", md.substr(0, md.size() - 10));
  EXPECT_EQ(code_of([&] { read_everything(ck); }), ErrorCode::kCorrupt);
  spit(ck + "/.metadata", "not a pickle");
  EXPECT_EQ(code_of([&] { read_everything(ck); }), ErrorCode::kCorrupt);
  default_file_system()->remove(ck + "/__0_0.distcp");
  spit(ck + "/.metadata", md);
  EXPECT_EQ(code_of([&] { read_everything(ck); }), ErrorCode::kCorrupt);
}

TEST(interop_TorchDcpHostile, UnknownClassInMetadataIsNamed) {
  testing::TempDir tmp;
  const std::string ck = copy_fixture(tmp.path(), "dcp_mlp_ws2");
  std::string md = slurp(ck + "/.metadata");
  // Rename the ChunkStorageMetadata class (same length keeps the pickle valid).
  const size_t at = md.find("ChunkStorageMetadata");
  ASSERT_NE(at, std::string::npos);
  md.replace(at, 20, "EvilStorageMetadata!");
  spit(ck + "/.metadata", md);
  const std::string msg = message_of([&] { read_everything(ck); });
  EXPECT_NE(msg.find("EvilStorageMetadata!"), std::string::npos) << msg;
  EXPECT_EQ(code_of([&] { read_everything(ck); }), ErrorCode::kUnsupported);
}

TEST(interop_TorchDcpHostile, RandomByteFlipsNeverCrash) {
  testing::TempDir tmp;
  const std::string ck = copy_fixture(tmp.path(), "dcp_mlp_ws2");
  const std::string md = slurp(ck + "/.metadata"), d0 = slurp(ck + "/__0_0.distcp");
  const uint64_t seed = testing::test_seed("TorchDcpHostile.RandomByteFlips");
  std::mt19937_64 rng(seed);
  int errors = 0;
  for (int round = 0; round < 300; ++round) {
    std::string m = md, d = d0;
    std::string& victim = round % 2 ? m : d;
    for (int k = 0; k < 1 + static_cast<int>(rng() % 4); ++k) {
      victim[rng() % victim.size()] = static_cast<char>(rng() & 0xff);
    }
    spit(ck + "/.metadata", m);
    spit(ck + "/__0_0.distcp", d);
    try {
      read_everything(ck);
    } catch (const Error&) {
      ++errors;  // any dcpp::Error is fine; a crash or another exception type is not
    }
  }
  EXPECT_GT(errors, 0);
}

TEST(interop_TorchDcpWriter, RefusesToReplaceForeignDirectory) {
  testing::TempDir tmp;
  spit(tmp.path() + "/precious.txt", "keep me");
  TorchDcpWriter w(tmp.path());
  StateDict sd{{"x", Tensor::arange(4)}};
  EXPECT_EQ(code_of([&] { save(sd, w); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(slurp(tmp.path() + "/precious.txt"), "keep me");
}

}  // namespace
}  // namespace dcpp
