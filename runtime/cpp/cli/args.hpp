// A small command-line parser for siamese-cli: --name value options, --flags and positionals.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "siamese/backend.hpp"
#include "siamese/error.hpp"

namespace cli {

struct Args {
  std::map<std::string, std::string> options;
  std::set<std::string> flags;
  std::vector<std::string> positional;

  // `valued`: options that take a value; `switches`: flags without one. Anything else is an error.
  Args(int argc, char** argv, int first, const std::set<std::string>& valued, const std::set<std::string>& switches) {
    for (int i = first; i < argc; ++i) {
      const std::string a = argv[i];
      if (a.rfind("--", 0) != 0) {
        positional.push_back(a);
      } else if (switches.count(a)) {
        flags.insert(a);
      } else if (valued.count(a)) {
        if (i + 1 >= argc) throw siamese::Error(siamese::ErrorCode::InvalidArgument, a + ": expected a value");
        options[a] = argv[++i];
      } else {
        throw siamese::Error(siamese::ErrorCode::InvalidArgument, "unknown option " + a + " (see --help)");
      }
    }
  }

  std::string get(const std::string& name, const std::string& fallback = "") const {
    const auto it = options.find(name);
    return it == options.end() ? fallback : it->second;
  }
  std::string required(const std::string& name) const {
    const auto it = options.find(name);
    if (it == options.end()) throw siamese::Error(siamese::ErrorCode::InvalidArgument, name + " is required");
    return it->second;
  }
  double number(const std::string& name, double fallback) const {
    const auto it = options.find(name);
    if (it == options.end()) return fallback;
    try {
      std::size_t used = 0;
      const double v = std::stod(it->second, &used);
      if (used == it->second.size()) return v;
    } catch (const std::exception&) {
    }
    throw siamese::Error(siamese::ErrorCode::InvalidArgument, name + " " + it->second + ": expected a number");
  }
};

// --threads N and --precision P (checked: fp32, fp16, bf16 or int8) as the backend's options.
inline siamese::BackendOptions backend_options(const Args& args) {
  siamese::BackendOptions options;
  options.threads = static_cast<int>(args.number("--threads", 0));
  options.precision = args.get("--precision");
  if (!options.precision.empty()) siamese::check_precision(options.precision);
  return options;
}

}  // namespace cli
