// config::compile() and the users file: a file that cannot be read (missing,
// a directory) or that names no user while nobody else is configured is an
// error, never "0 users", which would mean no authentication at all. Start-up
// and reload both go through compile(), so this is what keeps a reload of an
// emptied file from turning the proxy into an open one.

#include "config/settings.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

namespace {

namespace cfg = cs::config;
namespace fs = std::filesystem;

// A fresh directory under $TMPDIR, removed with the fixture.
class CompileUsersFile : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "cs-users-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::string write(const std::string& name, const std::string& text) const {
    const auto path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }

  // The message compile() throws, or "" when it accepts `s`.
  static std::string refusal(const cfg::settings& s) {
    try {
      (void)cfg::compile(s, 1);
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  }

  fs::path dir_;
};

TEST_F(CompileUsersFile, UsersAreLoaded) {
  cfg::settings s;
  s.users_file = write("users", "# team\nalice:pw\nbob:pw\n");
  const auto snap = cfg::compile(s, 1);
  EXPECT_EQ(snap->users.size(), 2u);
}

TEST_F(CompileUsersFile, MissingFileCannotBeRead) {
  cfg::settings s;
  s.users_file = (dir_ / "absent").string();
  EXPECT_EQ(refusal(s), "users file '" + s.users_file + "': cannot be read (No such file or directory)");
}

TEST_F(CompileUsersFile, DirectoryCannotBeRead) {
  cfg::settings s;
  s.users_file = dir_.string();
  EXPECT_EQ(refusal(s), "users file '" + s.users_file + "': cannot be read (Is a directory)");
  // Users given elsewhere do not make a directory acceptable.
  s.users = {{"dave", "pw"}};
  EXPECT_EQ(refusal(s), "users file '" + s.users_file + "': cannot be read (Is a directory)");
}

TEST_F(CompileUsersFile, FileNamingNoUserIsRefused) {
  for (const char* text : {"", "\n", "# all gone\n\n   # indented\n", "\r\n"}) {
    cfg::settings s;
    s.users_file = write("users", text);
    EXPECT_EQ(refusal(s), "users file '" + s.users_file +
                              "' names no user: refusing to run without authentication (remove users_file from "
                              "the configuration to run an open proxy)")
        << '"' << text << '"';
  }
}

TEST_F(CompileUsersFile, FileNamingNoUserBesideOtherUsersWarns) {
  cfg::settings s;
  s.users = {{"dave", "pw"}};
  s.users_file = write("users", "");
  const auto snap = cfg::compile(s, 1);
  EXPECT_EQ(snap->users.size(), 1u);
  const std::string expected =
      "users file '" + s.users_file + "' names no user; only the 1 user(s) from `users` or --user can log in";
  EXPECT_NE(std::find(snap->warnings.begin(), snap->warnings.end(), expected), snap->warnings.end())
      << "warnings: " << ::testing::PrintToString(snap->warnings);
}

TEST_F(CompileUsersFile, LargeFileIsReadWhole) {
  // More than one read(2) buffer: the last user must not be cut off.
  std::string text;
  for (int i = 0; i < 2000; ++i) {
    text += "user" + std::to_string(i) + ":password-of-user-" + std::to_string(i) + "\n";
  }
  cfg::settings s;
  s.users_file = write("users", text);
  const auto snap = cfg::compile(s, 1);
  EXPECT_EQ(snap->users.size(), 2000u);
  EXPECT_NE(snap->users.verify("user1999", "password-of-user-1999"), nullptr);
}

}  // namespace
