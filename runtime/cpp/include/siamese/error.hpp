// Errors of the C++ runtime: one exception type carrying a code the C ABI maps to its status values.
#pragma once

#include <stdexcept>
#include <string>

namespace siamese {

enum class ErrorCode {
  InvalidArgument = 1,  // a bad value passed by the caller (empty list, wrong shape, unknown option)
  Bundle = 2,           // missing or malformed bundle, manifest or reference; a file whose sha256 does not match
  Image = 3,            // an image file that is missing, unreadable or not decodable
  Backend = 4,          // a backend not built in, or one that cannot run this bundle here
  Internal = 5,         // anything else (a bug, or an exception from a library)
};

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

}  // namespace siamese
