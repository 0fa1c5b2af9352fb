// Option schemas: exclusive bounds (in_range, range_text, the validator's
// message, `qhost describe`'s constraint), members of a base struct bound
// without casts, and enum members bound by their spellings.
#include "cli/cli.hpp"
#include "config/config.hpp"
#include "expect_error.hpp"
#include "plugins/registry.hpp"

#include <qsdk/error.hpp>
#include <qsdk/schema.hpp>

#include <torch/torch.h>

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <sstream>

namespace qhost {
namespace {

struct Shared {
  int64_t bits = 2;
  double gamma = 0.5;
};
struct StepOptions : Shared {
  double step = 0.1;
  static qsdk::Schema<StepOptions> schema() {
    return qsdk::Schema<StepOptions>("exclusive bounds")
        .field("bits", &StepOptions::bits, "bit width (a Shared member)").range(1, 8)
        .field("gamma", &StepOptions::gamma, "in (0, 1)").greater_than(0).less_than(1)
        .field("step", &StepOptions::step, "positive step").greater_than(0);
  }
};

class Step : public qsdk::QuantizerImpl {
 public:
  Step(StepOptions o, const qsdk::QuantizerContext&) : o_(o) {}
  torch::Tensor forward(const torch::Tensor& x) override { return x * o_.step; }
  int64_t num_levels() const override { return int64_t{1} << o_.bits; }

 private:
  StepOptions o_;
};

TEST(Schema, ExclusiveBounds) {
  const auto info = StepOptions::schema().info();
  const qsdk::FieldSpec& gamma = *info.find("gamma");
  const qsdk::FieldSpec& step = *info.find("step");
  EXPECT_EQ(gamma.range_text(), "(0, 1)");
  EXPECT_EQ(step.range_text(), "> 0");
  EXPECT_EQ(info.find("bits")->range_text(), "[1, 8]");
  EXPECT_FALSE(step.in_range(0.0));
  EXPECT_TRUE(step.in_range(std::numeric_limits<double>::denorm_min()));
  EXPECT_FALSE(gamma.in_range(1.0));
  EXPECT_TRUE(gamma.in_range(0.999));
  EXPECT_FALSE(gamma.in_range(std::nan("")));
  EXPECT_TRUE(info.find("bits")->in_range(8.0));
  EXPECT_NO_THROW(info.check("quantizer/step"));
}

TEST(Schema, EmptyExclusiveRangeAndDefaultOnTheBoundAreSchemaErrors) {
  struct O {
    double a = 1.0;
  };
  auto bad_default = qsdk::Schema<O>("default on an excluded bound").field("a", &O::a, "a").greater_than(1);
  EXPECT_THROW(bad_default.info().check("quantizer/x"), qsdk::Error);
  auto empty = qsdk::Schema<O>("empty").field("a", &O::a, "a").greater_than(1).at_most(1);
  try {
    empty.info().check("quantizer/x");
    FAIL() << "no error";
  } catch (const qsdk::Error& e) {
    EXPECT_NE(std::string(e.what()).find("has an empty range (1, 1]"), std::string::npos) << e.what();
  }
}

TEST(Schema, BaseStructMembersBindWithoutCasts) {
  qsdk::Table t{{"bits", int64_t{4}}, {"gamma", 0.25}, {"step", 0.5}};
  StepOptions o = StepOptions::schema().bind(t);
  EXPECT_EQ(o.bits, 4);
  EXPECT_EQ(o.gamma, 0.25);
  EXPECT_EQ(o.step, 0.5);
}

TEST(Schema, ValidatorReportsExclusiveBounds) {
  Registry registry;
  registry.begin_plugin({"stepplug", "1.0.0", "/p/libqplug_stepplug.so"});
  registry.add_quantizer<Step, StepOptions>("step");
  registry.commit_plugin();
  Config c = Config::from_string(
      "[data]\ntype = \"x\"\n[quant.weight]\ntype = \"step\"\nstep = 0.0\ngamma = 1.0\n[quant.activation]\ntype = "
      "\"step\"\nstep = 1e-300\n",
      "t.toml");
  std::string all;
  for (const auto& p : c.check(registry)) all += p.str() + "\n";
  EXPECT_NE(all.find("quant.weight.step: 0.0 is not above 0"), std::string::npos) << all;
  EXPECT_NE(all.find("quant.weight.gamma: 1.0 is outside (0, 1)"), std::string::npos) << all;
  EXPECT_EQ(all.find("quant.activation.step"), std::string::npos) << all;  // tiny but positive is fine
}

// Enum options: bound by their spellings (several may name one value), the
// default spelled as the first name of T{}'s value, a base struct's member.
enum class Grad { none, ste, ste_scale };
struct GradBase {
  Grad grad = Grad::none;
};
struct GradOptions : GradBase {
  Grad fallback = Grad::ste;
  static qsdk::Schema<GradOptions> schema() {
    return qsdk::Schema<GradOptions>("enum options")
        .field("grad", &GradOptions::grad, "surrogate gradient (a GradBase member)",
               {{"none", Grad::none}, {"STE", Grad::ste}, {"STE-scale", Grad::ste_scale}})
        .field("fallback", &GradOptions::fallback, "two spellings of STE",
               {{"none", Grad::none}, {"STE", Grad::ste}, {"ste", Grad::ste}});
  }
};

class GradQuant : public qsdk::QuantizerImpl {
 public:
  GradQuant(GradOptions o, const qsdk::QuantizerContext&) : o_(o) {}
  torch::Tensor forward(const torch::Tensor& x) override { return o_.grad == Grad::ste_scale ? x * 2 : x; }
  int64_t num_levels() const override { return 4; }

 private:
  GradOptions o_;
};

TEST(SchemaEnum, BindsSpellingsToValues) {
  const auto schema = GradOptions::schema();
  const qsdk::FieldSpec& grad = *schema.info().find("grad");
  EXPECT_EQ(grad.type, qsdk::FieldType::enumeration);
  EXPECT_EQ(grad.allowed, (std::vector<std::string>{"none", "STE", "STE-scale"}));
  EXPECT_EQ(grad.default_value.as_string(), "none");
  EXPECT_EQ(schema.info().find("fallback")->default_value.as_string(), "STE");  // the first name of Grad::ste
  EXPECT_NO_THROW(schema.info().check("quantizer/grad"));

  GradOptions o = schema.bind({{"grad", "STE-scale"}, {"fallback", "ste"}});
  EXPECT_EQ(o.grad, Grad::ste_scale);
  EXPECT_EQ(o.fallback, Grad::ste);
  o = schema.bind({});
  EXPECT_EQ(o.grad, Grad::none);
  EXPECT_EQ(o.fallback, Grad::ste);
}

TEST(SchemaEnum, UnknownSpellingIsAConfigErrorListingTheAllowedValues) {
  const auto schema = GradOptions::schema();
  const std::string what = qtool_test::expect_error(
      [&] {
        schema.bind({{"grad", "STE_scale"}});
      },
      qsdk::ErrorCategory::config);
  EXPECT_EQ(what,
            "grad: \"STE_scale\" is not one of \"none\", \"STE\", \"STE-scale\" (hint: allowed values: \"none\", "
            "\"STE\", \"STE-scale\")");
  // Case matters: the spellings are the TOML's, exactly.
  qtool_test::expect_error([&] { schema.bind({{"grad", "ste"}}); }, qsdk::ErrorCategory::config);
  // Not a string at all: the type error bind() gives every field.
  const std::string type = qtool_test::expect_error(
      [&] {
        schema.bind({{"grad", int64_t{1}}});
      },
      qsdk::ErrorCategory::config);
  EXPECT_NE(type.find("expected enum"), std::string::npos) << type;
}

TEST(SchemaEnum, DefaultWithoutANameIsASchemaError) {
  struct O {
    Grad grad = Grad::ste_scale;
  };
  const std::string what = qtool_test::expect_error(
      [] {
        qsdk::Schema<O>("unnamed default").field("grad", &O::grad, "g", {{"none", Grad::none}, {"STE", Grad::ste}});
      },
      qsdk::ErrorCategory::plugin);
  EXPECT_NE(what.find("enum option 'grad' has a default (T{}) with no name among \"none\", \"STE\""), std::string::npos)
      << what;
}

Registry& grad_registry() {
  static Registry* registry = [] {
    auto* r = new Registry;
    r->begin_plugin({"gradplug", "1.0.0", "/p/libqplug_gradplug.so"});
    r->add_quantizer<GradQuant, GradOptions>("grad");
    r->commit_plugin();
    return r;
  }();
  return *registry;
}

TEST(SchemaEnum, ValidatorAndDescribeListTheAllowedValues) {
  Config c = Config::from_string(
      "[data]\ntype = \"x\"\n[quant.weight]\ntype = \"grad\"\ngrad = \"STE-scal\"\n[quant.activation]\ntype = "
      "\"grad\"\ngrad = \"STE-scale\"\n",
      "t.toml");
  std::string all;
  for (const auto& p : c.check(grad_registry())) all += p.str() + "\n";
  EXPECT_NE(all.find("t.toml:"), std::string::npos) << all;  // located in the file
  EXPECT_NE(all.find("quant.weight.grad: \"STE-scal\" is not one of \"none\", \"STE\", \"STE-scale\""),
            std::string::npos)
      << all;
  EXPECT_EQ(all.find("quant.activation.grad"), std::string::npos) << all;

  std::ostringstream out;
  print_description(out, grad_registry(), "quantizer/grad");
  EXPECT_NE(out.str().find("one of \"none\" | \"STE\" | \"STE-scale\""), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("one of \"none\" | \"STE\" | \"ste\""), std::string::npos) << out.str();

  // Built through the registry, the spelling reaches the plugin as the enum.
  auto q = grad_registry().make_quantizer({{"type", "grad"}, {"grad", "STE-scale"}}, {});
  EXPECT_TRUE(q->forward(torch::ones({1})).equal(torch::full({1}, 2.0f)));
}

}  // namespace
}  // namespace qhost
