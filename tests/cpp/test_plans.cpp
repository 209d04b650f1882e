// Which TensorRT plan may run here: the C++ matching (src/plans.cpp, compiled on every machine) on a plan and
// sidecar written by runtime/engines.py for TensorRT 10.3.0.30 on sm87. No engine is loaded: logic only.
// usage: test_plans PLAN_BUNDLE SCRATCH_DIR INT8_PLAN_BUNDLE
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "check.hpp"
#include "plans.hpp"
#include "siamese/siamese.hpp"

namespace fs = std::filesystem;
using siamese::detail::PlanMachine;

namespace {

std::vector<siamese::detail::PlanCheck> plans_for(const fs::path& bundle, const PlanMachine& machine) {
  return siamese::detail::check_plans(siamese::load_manifest(bundle.string(), false), machine);
}

bool mentions(const std::vector<siamese::detail::PlanCheck>& plans, const std::string& needle) {
  return plans.size() == 1 && !plans[0].reasons.empty() && plans[0].reasons[0].find(needle) != std::string::npos;
}

}  // namespace

int main(int argc, char** argv) {
  if (!check::args_ok(argc, argv, 3, "PLAN_BUNDLE SCRATCH_DIR INT8_PLAN_BUNDLE")) return 2;
  const fs::path bundle = argv[1], scratch = argv[2], int8_bundle = argv[3];
  auto same = plans_for(bundle, {"10.3.0.30", 8, 7});
  check::expect(same.size() == 1 && same[0].reasons.empty() && same[0].precision == "fp16" && same[0].max_batch == 32,
                "the plan matches the machine it was built for (fp16, max batch 32)");
  check::expect(plans_for(bundle, {"10.3.0", 8, 7}).at(0).reasons.empty(), "a version without the build number matches");
  check::expect(mentions(plans_for(bundle, {"10.4.0.26", 8, 7}), "built with TensorRT 10.3.0.30"), "another TensorRT: refused");
  check::expect(mentions(plans_for(bundle, {"10.3.0.30", 8, 6}), "this GPU is sm86"), "another GPU architecture: refused");

  fs::create_directories(scratch);
  const fs::path copy = scratch / "plans";
  fs::remove_all(copy);
  fs::copy(bundle, copy, fs::copy_options::recursive);
  for (const auto& e : fs::directory_iterator(copy)) {
    if (e.path().extension() == ".plan") std::ofstream(e.path(), std::ios::app) << "tampered";
  }
  check::expect(mentions(plans_for(copy, {"10.3.0.30", 8, 7}), "sha256"), "changed plan bytes: refused");
  std::ofstream(copy / "embedding.onnx", std::ios::app) << "changed";
  check::expect(mentions(plans_for(copy, {"10.3.0.30", 8, 7}), "built from another embedding.onnx"),
                "a plan built from another graph: refused");

  // a TensorRT 10 FP16 plan records the FP16 graph whose FP32 islands it pinned: another graph refuses it
  const fs::path pinned = scratch / "pinned";
  fs::remove_all(pinned);
  fs::copy(bundle, pinned, fs::copy_options::recursive);
  for (const auto& e : fs::directory_iterator(pinned)) {
    if (e.path().extension() != ".plan") continue;
    const fs::path sidecar = e.path().string() + ".json";
    std::ifstream in(sidecar);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    text.insert(text.find('{') + 1, "\"fp16_graph_sha256\": \"" + std::string(64, '0') + "\",");
    std::ofstream(sidecar, std::ios::trunc) << text;
  }
  std::ofstream(pinned / "embedding.fp16.onnx") << "another fp16 graph";
  check::expect(mentions(plans_for(pinned, {"10.3.0.30", 8, 7}), "FP32 islands came from another embedding.fp16.onnx"),
                "a plan whose FP32 islands came from another FP16 graph: refused");
  // an INT8 plan (built from embedding.int8.onnx) matches too, sorts after fp16, and runs only when asked for
  const auto both = plans_for(int8_bundle, {"10.3.0.30", 8, 7});
  check::expect(both.size() == 2 && both[0].reasons.empty() && both[1].reasons.empty() && both[0].precision == "fp16" &&
                    both[1].precision == "int8",
                "an fp16 and an int8 plan both match, fp16 first");
  using siamese::detail::choose_plan;
  check::expect(choose_plan(both, "") == &both[0], "left to pick, the fp16 plan");
  check::expect(choose_plan(both, "int8") == &both[1], "int8 asked: the int8 plan");
  check::expect(choose_plan(both, "fp32") == nullptr, "fp32 asked and no fp32 plan: none");
  const std::vector<siamese::detail::PlanCheck> only_int8{both[1]};
  check::expect(choose_plan(only_int8, "") == nullptr, "an int8 plan alone is never taken unasked");
  return check::result();
}
