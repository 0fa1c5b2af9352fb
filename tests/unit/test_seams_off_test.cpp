// host/platform/test_seams.cpp compiled as a release build compiles it (no
// QTOOL_TEST_SEAMS): no QTOOL_TEST_* variable reaches qhost.
#include "platform/test_seams.hpp"

#include <gtest/gtest.h>

#include <cstdlib>

TEST(TestSeams, ReleaseBuildIgnoresEveryHook) {
  ::setenv("QTOOL_TEST_STOP_AFTER_EPOCHS", "1", 1);
  ::setenv("QTOOL_TEST_KILL_RANK", "0", 1);
  ::setenv("QTOOL_TEST_KILL_AT_STEP", "3", 1);
  ::setenv("QTOOL_TEST_CRASH_AFTER_TEMP", "1", 1);
  EXPECT_FALSE(qhost::test_seams::enabled());
  EXPECT_FALSE(qhost::test_seams::value("STOP_AFTER_EPOCHS").has_value());
  EXPECT_FALSE(qhost::test_seams::value("CRASH_AFTER_TEMP").has_value());
  EXPECT_EQ(qhost::test_seams::integer("KILL_RANK", -1), -1);
  EXPECT_EQ(qhost::test_seams::integer("KILL_AT_STEP", -1), -1);
}
