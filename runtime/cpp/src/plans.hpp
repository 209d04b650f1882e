// Internal: which TensorRT plan of a bundle may run here (mirrors runtime/engines.py's check_plan, minus the
// cache-key recomputation: the sidecar's version, GPU, precision, shape and both sha256 are checked instead).
#pragma once

#include <string>
#include <vector>

#include "siamese/manifest.hpp"

namespace siamese::detail {

struct PlanMachine {
  std::string trt_version;  // "10.3.0.30"
  int cc_major = 0, cc_minor = 0;
};

struct PlanCheck {
  std::string plan;  // full path
  std::string precision;
  int max_batch = 0;
  std::vector<std::string> reasons;  // empty: may run here
};

// Every embedding.trt*.plan of the bundle with its verdict; matching ones first (fp16 before fp32).
std::vector<PlanCheck> check_plans(const Manifest& manifest, const PlanMachine& machine);

}  // namespace siamese::detail
