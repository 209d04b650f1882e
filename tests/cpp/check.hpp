// A tiny check helper for the ctest programs: counts failures, prints what was expected and what came.
#pragma once

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

namespace check {

inline int failures = 0;

inline void expect(bool ok, const std::string& what) {
  std::printf("%s: %s\n", ok ? "ok  " : "FAIL", what.c_str());
  if (!ok) ++failures;
}

// False (after printing the usage line) unless the program got `count` arguments.
inline bool args_ok(int argc, char** argv, int count, const char* usage) {
  if (argc == count + 1) return true;
  std::fprintf(stderr, "usage: %s %s\n", argv[0], usage);
  return false;
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

inline int result() {
  std::printf("%d failure(s)\n", failures);
  return failures == 0 ? 0 : 1;
}

}  // namespace check
