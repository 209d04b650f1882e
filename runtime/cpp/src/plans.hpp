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

// Every embedding.trt*.plan of the bundle with its verdict; matching ones first (fp16, then fp32, then int8).
std::vector<PlanCheck> check_plans(const Manifest& manifest, const PlanMachine& machine);

// The plan to run: the first that matches at the precision asked, or, with none asked, the first matching fp16 or
// fp32 plan (an INT8 plan runs only when asked, as runtime/engines.py decides); nullptr when none qualifies.
const PlanCheck* choose_plan(const std::vector<PlanCheck>& plans, const std::string& asked);

}  // namespace siamese::detail
