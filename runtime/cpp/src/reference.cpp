#include "siamese/reference.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>

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

Parity measure_parity(Backend& backend, const Reference& ref, const ScoreSpec& spec) {
  Parity p;
  const Tensor got = backend.embed(ref.inputs);
  const int64_t dim = ref.embeddings.row_size();
  if (got.shape != ref.embeddings.shape) throw Error(ErrorCode::Backend, "parity: embedding shape differs from the reference");
  double scale = 0;
  for (std::size_t i = 0; i < got.data.size(); ++i) {
    p.embedding_max_abs = std::max(p.embedding_max_abs, std::abs(static_cast<double>(got.data[i]) - ref.embeddings.data[i]));
    scale = std::max(scale, std::abs(static_cast<double>(ref.embeddings.data[i])));
  }
  p.embedding_rel = scale > 0 ? p.embedding_max_abs / scale : p.embedding_max_abs;
  for (int64_t r = 0; r < got.rows(); ++r) {  // cosine per row, as runtime.parity._cosines
    double ab = 0, aa = 0, bb = 0;
    for (int64_t k = 0; k < dim; ++k) {
      const double a = ref.embeddings.row(r)[k], b = got.row(r)[k];
      ab += a * b, aa += a * a, bb += b * b;
    }
    const double cos = (aa == 0 && bb == 0) ? 1.0 : ab / std::max(std::sqrt(aa) * std::sqrt(bb), 1e-30);
    p.min_cosine = std::min(p.min_cosine, cos);
  }
  const auto pairs = static_cast<int64_t>(ref.scores.size());
  Tensor ea({pairs, dim}), eb({pairs, dim});
  for (int64_t i = 0; i < pairs; ++i) {
    std::copy(got.row(ref.pair_a[i]), got.row(ref.pair_a[i]) + dim, ea.row(i));
    std::copy(got.row(ref.pair_b[i]), got.row(ref.pair_b[i]) + dim, eb.row(i));
  }
  const std::vector<float> scores = backend.score(ea, eb);
  for (int64_t i = 0; i < pairs; ++i) {
    const double want = ref.scores[static_cast<std::size_t>(i)], have = scores[static_cast<std::size_t>(i)];
    p.score_max_abs = std::max(p.score_max_abs, std::abs(have - want));
    p.decision_flips += spec.is_match(want) != spec.is_match(have);
  }
  p.pairs = static_cast<int>(pairs);
  p.images = static_cast<int>(got.rows());
  return p;
}

}  // namespace siamese
