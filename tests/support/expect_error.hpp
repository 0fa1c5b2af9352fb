// expect_error.hpp - the one "this must throw a qsdk::Error of category X" helper.
#pragma once

#include <qsdk/error.hpp>

#include <gtest/gtest.h>

#include <exception>
#include <string>

namespace qtool_test {

/// Runs `fn` and returns the what() of the qsdk::Error it throws, after
/// checking its category. Records a test failure (and returns "") when `fn`
/// returns normally or throws anything else, so a missing error can never pass
/// as an empty message that a later EXPECT happens not to look at.
template <class Fn>
std::string expect_error(Fn&& fn, qsdk::ErrorCategory category) {
  try {
    fn();
  } catch (const qsdk::Error& e) {
    EXPECT_EQ(e.category(), category) << e.what();
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a qsdk::Error: " << e.what();
    return "";
  }
  ADD_FAILURE() << "no qsdk::Error thrown";
  return "";
}

}  // namespace qtool_test
