#include "plans.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <nlohmann/json.hpp>

namespace siamese::detail {
namespace fs = std::filesystem;

namespace {

std::vector<std::string> split_version(const std::string& v) {
  std::vector<std::string> parts;
  std::stringstream s(v);
  for (std::string p; std::getline(s, p, '.');) parts.push_back(std::to_string(std::stoll(p)));
  return parts;
}

// Versions agree on every part both state (a sidecar may record 10.3.0 or 10.3.0.30), at least major.minor.patch.
bool same_version(const std::string& a, const std::string& b) {
  try {
    const auto pa = split_version(a), pb = split_version(b);
    const std::size_t n = std::min(pa.size(), pb.size());
    return n >= 3 && std::equal(pa.begin(), pa.begin() + static_cast<long>(n), pb.begin());
  } catch (const std::exception&) {
    return false;
  }
}

PlanCheck check_one(const Manifest& m, const fs::path& plan, const PlanMachine& here) {
  PlanCheck c;
  c.plan = plan.string();
  auto& why = c.reasons;
  nlohmann::json side;
  std::ifstream in(plan.string() + ".json");
  try {
    side = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception&) {
    why.push_back("its sidecar " + plan.filename().string() + ".json is missing or not JSON");
    return c;
  }
  try {
    if (side.value("format", "") != "siamese-edge.engine/1" || side.value("file", "") != plan.filename().string()) {
      why.push_back("its sidecar is not a siamese-edge.engine/1 description of this plan");
      return c;
    }
    if (!same_version(side.value("tensorrt", ""), here.trt_version)) {
      why.push_back("built with TensorRT " + side.value("tensorrt", "?") + ", this machine has TensorRT " + here.trt_version);
    }
    const auto cc = side.value("compute_capability", std::vector<int>{});
    if (cc != std::vector<int>{here.cc_major, here.cc_minor}) {
      why.push_back("built for another GPU architecture (sm" + (cc.size() == 2 ? std::to_string(cc[0]) + std::to_string(cc[1]) : "?") +
                    "), this GPU is sm" + std::to_string(here.cc_major) + std::to_string(here.cc_minor));
    }
    c.precision = side.value("precision", "");
    if (c.precision != "fp16" && c.precision != "fp32" && c.precision != "int8") {
      why.push_back("precision '" + c.precision + "' in the sidecar");
    }
    const Preprocessing& p = m.preprocessing;
    const auto shape = side["input"].value("shape", std::vector<int64_t>{});
    if (shape.size() != 4 || shape[1] != p.height || shape[2] != p.width || shape[3] != p.channels()) {
      why.push_back("its input shape is not the bundle's");
    }
    c.max_batch = side["profile"].value("max", 0);
    if (c.max_batch < 1) why.push_back("no batch profile in the sidecar");
    const fs::path source = plan.parent_path() / side.value("source_onnx", "");
    if (!fs::is_regular_file(source) || sha256_file(source.string()) != side.value("source_sha256", "")) {
      why.push_back("built from another " + source.filename().string() + " than the bundle's (sha256 differs)");
    }
    // a TensorRT 10 FP16 plan that pinned FP32 islands of embedding.fp16.onnx: that graph must be the one it read
    // (runtime.engines.check_plan makes the same check)
    if (side.contains("fp16_graph_sha256") && !side["fp16_graph_sha256"].is_null()) {
      const fs::path fp16 = plan.parent_path() / "embedding.fp16.onnx";
      if (!fs::is_regular_file(fp16) || sha256_file(fp16.string()) != side.value("fp16_graph_sha256", "")) {
        why.push_back("its FP32 islands came from another embedding.fp16.onnx than the bundle's (sha256 differs)");
      }
    }
    if (why.empty() && sha256_file(plan.string()) != side.value("plan_sha256", "")) {
      why.push_back("the plan's sha256 is not the one its sidecar records (changed or truncated)");
    }
  } catch (const nlohmann::json::exception& e) {
    why.push_back(std::string("its sidecar has a field of the wrong type (") + e.what() + ")");
  }
  return c;
}

}  // namespace

std::vector<PlanCheck> check_plans(const Manifest& m, const PlanMachine& machine) {
  static const std::regex name(R"(^embedding\.trt\d+(\.\d+)?\.sm\d+\.[a-z0-9]+\.[0-9a-f]+\.plan$)");
  std::vector<PlanCheck> out;
  for (const auto& entry : fs::directory_iterator(m.bundle_dir)) {
    const std::string file = entry.path().filename().string();
    if (entry.is_regular_file() && std::regex_match(file, name)) out.push_back(check_one(m, entry.path(), machine));
  }
  const auto rank = [](const PlanCheck& c) { return std::make_pair(!c.reasons.empty(), c.precision == "fp16" ? 0 : c.precision == "fp32" ? 1 : 2); };
  std::stable_sort(out.begin(), out.end(), [&rank](const PlanCheck& a, const PlanCheck& b) { return rank(a) < rank(b); });
  return out;
}

const PlanCheck* choose_plan(const std::vector<PlanCheck>& plans, const std::string& asked) {
  for (const auto& p : plans) {
    if (!p.reasons.empty()) continue;
    if (asked.empty() ? p.precision != "int8" : p.precision == asked) return &p;
  }
  return nullptr;
}

}  // namespace siamese::detail
