// Did-you-mean and exit codes.
#include "platform/errors.hpp"

#include <gtest/gtest.h>

namespace qhost {
namespace {

TEST(EditDistance, CountsEditsAndAdjacentSwaps) {
  EXPECT_EQ(edit_distance("lsq", "lsq"), 0u);
  EXPECT_EQ(edit_distance("lsqq", "lsq"), 1u);      // insertion
  EXPECT_EQ(edit_distance("lqs", "lsq"), 1u);       // transposition counts once
  EXPECT_EQ(edit_distance("batchsize", "batch_size"), 1u);
  EXPECT_EQ(edit_distance("DoReFa", "dorefa"), 0u); // case-insensitive
  EXPECT_EQ(edit_distance("", "abc"), 3u);
}

TEST(DidYouMean, SuggestsOnlyPlausibleTypos) {
  std::vector<std::string> names{"dorefa", "lsq", "pact", "xnor"};
  EXPECT_EQ(did_you_mean("lqs", names), "did you mean 'lsq'?");
  EXPECT_EQ(did_you_mean("dorfea", names), "did you mean 'dorefa'?");
  EXPECT_EQ(did_you_mean("resnet", names), "");  // nothing close: no suggestion
  EXPECT_EQ(did_you_mean("x", {}), "");
}

TEST(ExitCodes, OnePerCategory) {
  EXPECT_EQ(exit_code(qsdk::ErrorCategory::usage), 1);
  EXPECT_EQ(exit_code(qsdk::ErrorCategory::config), 2);
  EXPECT_EQ(exit_code(qsdk::ErrorCategory::plugin), 3);
  EXPECT_EQ(exit_code(qsdk::ErrorCategory::data), 4);
  EXPECT_EQ(exit_code(qsdk::ErrorCategory::checkpoint), 5);
  EXPECT_EQ(exit_code(qsdk::ErrorCategory::runtime), 6);
}

int throws_config(int, char**) { throw qsdk::Error(qsdk::ErrorCategory::config, "a.toml:1:1", "bad", "fix it"); }
int throws_std(int, char**) { throw std::runtime_error("boom"); }
int throws_int(int, char**) { throw 42; }

TEST(ReportErrors, PrintsCategoryAndReturnsItsCode) {
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(report_errors(throws_config, 0, nullptr), 2);
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "error[config]: a.toml:1:1: bad (hint: fix it)\n");
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(report_errors(throws_std, 0, nullptr), 6);
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "error[runtime]: boom\n");
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(report_errors(throws_int, 0, nullptr), 6);
  EXPECT_EQ(::testing::internal::GetCapturedStderr(),
            "error[runtime]: unknown exception (not derived from std::exception)\n");
}

}  // namespace
}  // namespace qhost
