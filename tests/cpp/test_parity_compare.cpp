// siamese::compare_parity against runtime.parity.compare on the same arrays (parity_cases.json, written by
// make_test_data.py): the same metrics, the same refitted threshold, the same checks and verdicts.
// usage: test_parity_compare PARITY_CASES_JSON
#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "check.hpp"
#include "siamese/siamese.hpp"

namespace {

siamese::Tensor matrix(const nlohmann::json& rows) {
  siamese::Tensor t({static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows.at(0).size())});
  std::size_t i = 0;
  for (const auto& row : rows) {
    for (const auto& v : row) t.data[i++] = v.get<float>();
  }
  return t;
}

bool close(double a, double b) { return a == b || std::abs(a - b) <= 1e-12 * std::max(std::abs(a), std::abs(b)); }

}  // namespace

int main(int argc, char** argv) {
  if (!check::args_ok(argc, argv, 1, "PARITY_CASES_JSON")) return 2;
  std::ifstream in(argv[1]);
  for (const auto& c : nlohmann::json::parse(in)) {
    const std::string name = c.at("name");
    siamese::ScoreSpec spec;
    spec.kind = c.at("spec").at("kind");
    spec.same_when = c.at("spec").at("same_when");
    spec.threshold = c.at("spec").at("threshold");
    const std::string precision = c.at("precision");
    const siamese::Parity p = siamese::compare_parity(
        precision, matrix(c.at("ref_embeddings")), matrix(c.at("got_embeddings")), c.at("ref_scores").get<std::vector<float>>(),
        c.at("got_scores").get<std::vector<float>>(), spec, siamese::tolerances_for(precision));
    const nlohmann::json& want = c.at("result");
    const nlohmann::json& m = want.at("metrics");
    const std::pair<const char*, double> metrics[] = {
        {"embedding_max_abs", p.embedding_max_abs}, {"embedding_rel", p.embedding_rel}, {"min_cosine", p.min_cosine},
        {"score_max_abs", p.score_max_abs}, {"noise_band", p.noise_band}, {"flip_rate", p.flip_rate},
        {"decision_flips", p.decision_flips}, {"flips_outside_band", p.flips_outside_band},
        {"flips_at_manifest_threshold", p.flips_at_manifest_threshold}};
    for (const auto& [metric, got] : metrics) {
      check::expect(close(got, m.at(metric).get<double>()),
                    name + " " + metric + ": c++ " + std::to_string(got) + ", python " + m.at(metric).dump());
    }
    const bool refit = !want.at("threshold").is_null();
    check::expect(refit == p.threshold.has_value() && (!refit || *p.threshold == want.at("threshold").get<double>()),
                  name + " threshold: python " + want.at("threshold").dump() +
                      (p.threshold ? ", c++ " + std::to_string(*p.threshold) : ", c++ none"));
    const nlohmann::json& checks = want.at("checks");
    bool same = checks.size() == p.checks.size();
    for (std::size_t i = 0; same && i < checks.size(); ++i) {
      const siamese::ParityCheck& k = p.checks[i];
      same = checks[i].at("metric") == k.metric && checks[i].at("asked").get<double>() == k.asked &&
             close(checks[i].at("observed").get<double>(), k.observed) && checks[i].at("passed") == k.passed &&
             checks[i].at("higher_is_better") == k.higher_is_better;
    }
    check::expect(same, name + ": " + std::to_string(p.checks.size()) + " checks, the same as python's " +
                            std::to_string(checks.size()));
    check::expect((want.at("status") == "PASSED") == p.passed(), name + ": " + want.at("status").get<std::string>());
  }
  return check::result();
}
