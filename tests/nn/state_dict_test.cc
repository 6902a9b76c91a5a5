// StateDict: Python reference semantics, deep clone, insertion order, errors.
#include "dcpp/state_dict.h"

#include <gtest/gtest.h>

#include "dcpp/error.h"

namespace dcpp {
namespace {

TEST(nn_StateDict, CopiesAliasLikePythonReferences) {
  StateDict a;
  a.set("x", int64_t{1});
  StateDict b = a;  // b = a
  EXPECT_TRUE(b.is(a));
  b.set("y", 2.5);
  EXPECT_TRUE(a.contains("y"));  // visible through both handles
  EXPECT_EQ(a.size(), 2u);
  StateDict c;
  c.set("x", int64_t{1});
  c.set("y", 2.5);
  EXPECT_FALSE(c.is(a));  // equal content is not identity

  // A nested dict stored in a value is the same object.
  StateDict outer;
  outer.set("model", a);
  EXPECT_TRUE(outer.at("model").dict().is(a));
  outer.at("model").dict().set("z", true);
  EXPECT_TRUE(a.contains("z"));

  StateList l1{1, 2};
  StateList l2 = l1;
  l2.push_back(3);
  EXPECT_TRUE(l1.is(l2));
  EXPECT_EQ(l1.size(), 3u);
}

TEST(nn_StateDict, TensorValuesAliasStorage) {
  Tensor t = Tensor::zeros({2, 3});
  StateDict sd{{"w", t}};
  Tensor& stored = sd.at("w").tensor();
  stored.set({1, 2}, 7.0);
  EXPECT_EQ(t.at({1, 2}), 7.0);  // in-place write through the dict reaches the original
}

TEST(nn_StateDict, CloneDeepCopiesTensorData) {
  Tensor t = Tensor::full({4}, 1.5);
  StateDict inner{{"t", t}, {"n", int64_t{3}}};
  StateList lst{Tensor::full({2}, 2.0), StateValue("s")};
  StateDict sd{{"inner", inner}, {"list", lst}, {"b", Bytes{std::byte{1}, std::byte{2}}}};

  StateDict copy = sd.clone();
  EXPECT_FALSE(copy.is(sd));
  EXPECT_FALSE(copy.at("inner").dict().is(inner));
  EXPECT_FALSE(copy.at("list").list().is(lst));
  Tensor& ct = copy.at("inner").dict().at("t").tensor();
  EXPECT_FALSE(ct.shares_storage_with(t));
  EXPECT_TRUE(equal(ct, t));
  ct.fill_(9.0);
  EXPECT_EQ(t.at({0}), 1.5);  // the original is untouched
  copy.at("list").list()[0].tensor().fill_(5.0);
  EXPECT_EQ(lst[0].tensor().at({1}), 2.0);
  EXPECT_EQ(copy.at("inner").dict().at("n").as<int64_t>(), 3);
  EXPECT_EQ(copy.at("list").list()[1].as<std::string>(), "s");
  EXPECT_EQ(copy.at("b").as<Bytes>().size(), 2u);
}

TEST(nn_StateDict, KeepsInsertionOrder) {
  StateDict sd;
  const std::vector<std::string> order = {"zeta", "alpha", "net2.weight", "net1.bias", "m"};
  for (size_t i = 0; i < order.size(); ++i) sd.set(order[i], static_cast<int64_t>(i));
  EXPECT_EQ(sd.keys(), order);
  sd.set("alpha", 42.0);  // replacing keeps the position
  EXPECT_EQ(sd.keys(), order);
  EXPECT_EQ(sd.at("alpha").as<double>(), 42.0);
  EXPECT_TRUE(sd.erase("net2.weight"));
  EXPECT_FALSE(sd.erase("net2.weight"));
  std::vector<std::string> expected = {"zeta", "alpha", "net1.bias", "m"};
  EXPECT_EQ(sd.keys(), expected);
  EXPECT_EQ(sd.at("m").as<int64_t>(), 4);  // lookups still right after the erase
  sd["new"] = "v";
  expected.push_back("new");
  std::vector<std::string> iterated;
  for (const auto& [k, v] : sd) iterated.push_back(k);
  EXPECT_EQ(iterated, expected);
  StateDict c = sd.clone();
  EXPECT_EQ(c.keys(), expected);
}

TEST(nn_StateDict, ErrorsNameTheKeyAndType) {
  StateDict sd{{"a", int64_t{1}}};
  try {
    sd.at("missing.key");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(e.message().find("missing.key"), std::string::npos);
  }
  const StateDict& csd = sd;
  EXPECT_THROW(csd.at("nope"), Error);
  EXPECT_EQ(sd.find("nope"), nullptr);
  try {
    sd.at("a").tensor();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(e.message().find("int"), std::string::npos);
    EXPECT_NE(e.message().find("Tensor"), std::string::npos);
  }
  StateList l{1};
  EXPECT_THROW(l[3], Error);
}

TEST(nn_StateDict, TypeNames) {
  EXPECT_EQ(StateValue().type_name(), "None");
  EXPECT_EQ(StateValue(Tensor::zeros({1})).type_name(), "Tensor");
  EXPECT_EQ(StateValue(1).type_name(), "int");
  EXPECT_EQ(StateValue(1.0).type_name(), "float");
  EXPECT_EQ(StateValue(true).type_name(), "bool");
  EXPECT_EQ(StateValue("s").type_name(), "str");
  EXPECT_EQ(StateValue(Bytes{}).type_name(), "bytes");
  EXPECT_EQ(StateValue(StateDict()).type_name(), "dict");
  EXPECT_EQ(StateValue(StateList()).type_name(), "list");
}

}  // namespace
}  // namespace dcpp
