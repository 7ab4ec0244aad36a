// A fixture giving each test its own temporary folder, removed afterwards.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "tlm/check.h"

namespace tlm::testing {

class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           fmt::format("tlm_{}_{}_{}", info->test_suite_name(), info->name(), ::getpid());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Expects fn to throw a tlm::Error whose message contains every fragment.
  template <typename Fn>
  void expect_error(Fn fn, std::initializer_list<std::string> fragments) {
    try {
      fn();
      ADD_FAILURE() << "no error thrown";
    } catch (const Error& e) {
      for (const auto& f : fragments) EXPECT_NE(std::string(e.what()).find(f), std::string::npos) << e.what();
    }
  }

  template <typename Fn>
  void expect_error(Fn fn, const std::string& fragment) {
    expect_error(fn, {fragment});
  }

  std::filesystem::path dir_;
};

}  // namespace tlm::testing
