// End to end against the Python runtime: the same image files, the same bundle -> the same scores, within the
// FP32 score tolerance of runtime/parity_tolerances.json (siamese/tolerances.hpp, generated from it).
// usage: test_python_scores TEST_DATA_DIR BACKEND
#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "check.hpp"
#include "siamese/siamese.hpp"

int main(int argc, char** argv) {
  if (!check::args_ok(argc, argv, 2, "TEST_DATA_DIR BACKEND")) return 2;
  const std::string dir = argv[1], backend = argv[2];
  std::ifstream scores_file(dir + "/python_scores.json");
  const double tol = siamese::tolerances_for("fp32").score_abs.value();
  const nlohmann::json expected = nlohmann::json::parse(scores_file);
  for (const auto& [bundle, pairs] : expected.items()) {
    siamese::Verifier v(dir + "/bundles/" + bundle, backend);
    double worst = 0;
    int flips = 0;
    for (const auto& p : pairs) {
      const siamese::Verification r = v.verify_files(p.at("a"), p.at("b"));
      const double want = p.at("score");
      worst = std::max(worst, std::abs(r.score - want));
      flips += v.spec().is_match(want) != r.match;
    }
    std::ostringstream what;
    what << bundle << " on " << v.backend().name() << ": " << pairs.size() << " pairs from image files, max |python - c++| "
         << worst << " <= " << tol << ", decision flips " << flips;
    check::expect(worst <= tol && flips == 0, what.str());
  }
  return check::result();
}
