#include "siamese/reference.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <utility>

#include "siamese/error.hpp"

namespace siamese {

namespace {

// The raw file's bytes, checked against its listed dtype and shape (little-endian, as written by the exporter).
template <typename T>
std::vector<T> read_raw(const Manifest& m, const std::string& name, const char* dtype, std::vector<int64_t>* shape) {
  const auto it = m.reference_raw.find(name);
  if (it == m.reference_raw.end()) {
    throw Error(ErrorCode::Bundle, m.path(kManifestName) + ": no reference.raw." + name +
                                       " (exported before the raw reference: re-export the bundle)");
  }
  const RawArray& a = it->second;
  if (a.dtype != dtype) throw Error(ErrorCode::Bundle, m.path(a.file) + ": dtype " + a.dtype + ", expected " + dtype);
  int64_t count = 1;
  for (int64_t d : a.shape) count *= d;
  std::ifstream in(m.path(a.file), std::ios::binary | std::ios::ate);
  if (!in) throw Error(ErrorCode::Bundle, m.path(a.file) + ": missing");
  const auto bytes = static_cast<int64_t>(in.tellg());
  if (count < 0 || bytes != count * static_cast<int64_t>(sizeof(T))) {
    throw Error(ErrorCode::Bundle, m.path(a.file) + ": " + std::to_string(bytes) + " bytes, its shape needs " +
                                       std::to_string(count * static_cast<int64_t>(sizeof(T))));
  }
  std::vector<T> out(static_cast<std::size_t>(count));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(out.data()), bytes);
  if (shape) *shape = a.shape;
  return out;
}

}  // namespace

Reference load_reference(const Manifest& m) {
  Reference r;
  r.inputs.data = read_raw<float>(m, "inputs", "float32", &r.inputs.shape);
  r.embeddings.data = read_raw<float>(m, "embeddings", "float32", &r.embeddings.shape);
  r.scores = read_raw<float>(m, "scores", "float32", nullptr);
  r.pair_a = read_raw<int64_t>(m, "pair_a", "int64", nullptr);
  r.pair_b = read_raw<int64_t>(m, "pair_b", "int64", nullptr);
  const int64_t n = r.inputs.rows();
  auto in_range = [n](int64_t i) { return i >= 0 && i < n; };
  if (r.embeddings.rows() != n || r.pair_a.size() != r.scores.size() || r.pair_b.size() != r.scores.size() ||
      !std::all_of(r.pair_a.begin(), r.pair_a.end(), in_range) || !std::all_of(r.pair_b.begin(), r.pair_b.end(), in_range)) {
    throw Error(ErrorCode::Bundle, m.path(kManifestName) + ": the reference arrays do not fit together");
  }
  return r;
}

const Tolerances& tolerances_for(const std::string& precision) {
  for (const PrecisionTolerances& row : kTolerances) {
    if (precision == row.precision) return row.tolerances;
  }
  std::string known;
  for (const PrecisionTolerances& row : kTolerances) known += std::string(known.empty() ? "" : ", ") + row.precision;
  throw Error(ErrorCode::InvalidArgument, "precision '" + precision + "': expected one of " + known);
}

double quantile(std::vector<double> values, double q) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const double n = static_cast<double>(values.size());
  const double at = (n - 1) * q;  // numpy's linear method: virtual index (n - 1) * q, then _lerp
  if (at >= n - 1) return values.back();
  if (at < 0) return values.front();
  const double below = std::floor(at);
  const auto i = static_cast<std::size_t>(below);
  const double a = values[i], b = values[i + 1], t = at - below, diff = b - a;
  return t >= 0.5 ? b - diff * (1 - t) : a + diff * t;
}

bool Parity::passed() const {
  return std::all_of(checks.begin(), checks.end(), [](const ParityCheck& c) { return c.passed; });
}

namespace {

ScoreSpec at_threshold(const ScoreSpec& spec, double threshold) {
  ScoreSpec s = spec;
  s.threshold = threshold;
  return s;
}

int count_flips(const std::vector<bool>& want, const std::vector<double>& got, const ScoreSpec& spec) {
  int flips = 0;
  for (std::size_t i = 0; i < got.size(); ++i) flips += want[i] != spec.is_match(got[i]);
  return flips;
}

// runtime.parity.refit_threshold: the manifest's threshold moved by the median of got - ref over the pairs whose
// reference score lies within `band` of it (all pairs when fewer than 5 do), and the flips at that threshold.
std::pair<double, int> refit_threshold(const std::vector<bool>& want, const std::vector<double>& ref,
                                       const std::vector<double>& got, const ScoreSpec& spec, double band) {
  const double t = spec.threshold;
  std::vector<double> shift;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    if (std::abs(ref[i] - t) <= band) shift.push_back(got[i] - ref[i]);
  }
  if (shift.size() < 5) {
    shift.clear();
    for (std::size_t i = 0; i < ref.size(); ++i) shift.push_back(got[i] - ref[i]);
  }
  std::sort(shift.begin(), shift.end());
  const std::size_t m = shift.size();
  const double median = m % 2 ? shift[m / 2] : (shift[m / 2 - 1] + shift[m / 2]) / 2.0;  // numpy's median
  const double refit = t + median;
  return {refit, count_flips(want, got, at_threshold(spec, refit))};
}

}  // namespace

Parity compare_parity(const std::string& precision, const Tensor& ref_embeddings, const Tensor& got_embeddings,
                      const std::vector<float>& ref_scores, const std::vector<float>& got_scores, const ScoreSpec& spec,
                      const Tolerances& tol) {
  if (got_embeddings.shape != ref_embeddings.shape || got_embeddings.data.size() != ref_embeddings.data.size()) {
    throw Error(ErrorCode::InvalidArgument, "parity: embedding shape differs from the reference");
  }
  if (got_scores.size() != ref_scores.size()) {
    throw Error(ErrorCode::InvalidArgument, "parity: " + std::to_string(got_scores.size()) + " scores, the reference has " +
                                                std::to_string(ref_scores.size()));
  }
  Parity p;
  p.precision = precision;
  double scale = 0;
  for (std::size_t i = 0; i < got_embeddings.data.size(); ++i) {
    const double ref = ref_embeddings.data[i];
    p.embedding_max_abs = std::max(p.embedding_max_abs, std::abs(static_cast<double>(got_embeddings.data[i]) - ref));
    scale = std::max(scale, std::abs(ref));
  }
  p.embedding_rel = scale > 0 ? p.embedding_max_abs / scale : p.embedding_max_abs;
  const int64_t rows = ref_embeddings.shape.empty() ? 0 : ref_embeddings.rows();
  const int64_t dim = rows ? ref_embeddings.row_size() : 0;
  for (int64_t r = 0; r < rows; ++r) {  // cosine per row, as runtime.parity._cosines
    double ab = 0, aa = 0, bb = 0;
    for (int64_t k = 0; k < dim; ++k) {
      const double a = ref_embeddings.row(r)[k], b = got_embeddings.row(r)[k];
      ab += a * b, aa += a * a, bb += b * b;
    }
    const double cos = (aa == 0 && bb == 0) ? 1.0 : ab / std::max(std::sqrt(aa) * std::sqrt(bb), 1e-30);
    p.min_cosine = std::min(p.min_cosine, cos);
  }
  const std::size_t n = ref_scores.size();
  const std::vector<double> rs(ref_scores.begin(), ref_scores.end()), gs(got_scores.begin(), got_scores.end());
  std::vector<double> err(n);
  std::vector<bool> want(n);
  for (std::size_t i = 0; i < n; ++i) {
    err[i] = std::abs(gs[i] - rs[i]);
    p.score_max_abs = std::max(p.score_max_abs, err[i]);
    want[i] = spec.is_match(rs[i]);
  }
  p.noise_band = quantile(err, kNoiseBandQuantile);
  p.flips_at_manifest_threshold = count_flips(want, gs, spec);
  ScoreSpec decide = spec;
  const bool reduced = precision == "fp16" || precision == "bf16" || precision == "int8";
  if (reduced && n) {
    const auto [refit, refit_flips] = refit_threshold(want, rs, gs, spec, p.noise_band);
    if (p.flips_at_manifest_threshold - refit_flips >= std::max(kRefitMinFlips, kRefitMinRate * static_cast<double>(n))) {
      p.threshold = refit;
      decide = at_threshold(spec, refit);
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (want[i] == decide.is_match(gs[i])) continue;
    ++p.decision_flips;
    p.flips_outside_band += std::abs(rs[i] - spec.threshold) > p.noise_band;
  }
  p.flip_rate = n ? static_cast<double>(p.decision_flips) / static_cast<double>(n) : 0.0;
  p.pairs = static_cast<int>(n);
  p.images = static_cast<int>(rows);
  auto check = [&p](const char* metric, const std::optional<double>& asked, double observed, bool higher) {
    if (!asked) return;
    p.checks.push_back({metric, *asked, observed, higher ? observed >= *asked : observed <= *asked, higher});
  };
  check("embedding_rel", tol.embedding_rel, p.embedding_rel, false);
  check("score_max_abs", tol.score_abs, p.score_max_abs, false);
  check("min_cosine", tol.min_cosine, p.min_cosine, true);
  check("flips_outside", tol.max_flips_outside_band, p.flips_outside_band, false);
  check("flip_rate", tol.max_flip_rate, p.flip_rate, false);
  return p;
}

Parity measure_parity(Backend& backend, const Reference& ref, const ScoreSpec& spec,
                      const std::optional<Tolerances>& tolerances) {
  const std::string precision = backend.precision();
  const Tolerances tol = tolerances ? *tolerances : tolerances_for(precision);
  const Tensor got = backend.embed(ref.inputs);
  if (got.shape != ref.embeddings.shape) throw Error(ErrorCode::Backend, "parity: embedding shape differs from the reference");
  const int64_t dim = ref.embeddings.row_size();
  const auto pairs = static_cast<int64_t>(ref.scores.size());
  Tensor ea({pairs, dim}), eb({pairs, dim});
  for (int64_t i = 0; i < pairs; ++i) {
    std::copy(got.row(ref.pair_a[i]), got.row(ref.pair_a[i]) + dim, ea.row(i));
    std::copy(got.row(ref.pair_b[i]), got.row(ref.pair_b[i]) + dim, eb.row(i));
  }
  const std::vector<float> scores = pairs ? backend.score(ea, eb) : std::vector<float>{};
  return compare_parity(precision, ref.embeddings, got, ref.scores, scores, spec, tol);
}

}  // namespace siamese
