#include "siamese/gallery.hpp"

#include <algorithm>
#include <cmath>

#include "siamese/error.hpp"

namespace siamese {

namespace {

Tensor rows_tensor(const float* data, int64_t n, int64_t dim) {
  Tensor t({n, dim});
  std::copy(data, data + n * dim, t.data.begin());
  return t;
}

}  // namespace

Gallery::Gallery(Verifier& verifier, const std::string& aggregate, std::optional<double> threshold)
    : verifier_(verifier), spec_(verifier.spec()) {
  aggregate_ = !aggregate.empty() ? aggregate : (verifier.manifest().head_kind == "euclidean" ? "template" : "mean");
  if (aggregate_ != "template" && aggregate_ != "mean" && aggregate_ != "max") {
    throw Error(ErrorCode::InvalidArgument, "gallery aggregate '" + aggregate + "': expected template, mean or max");
  }
  if (threshold) {
    spec_.threshold = *threshold;
    spec_.threshold_source = "given to the gallery";
  }
}

void Gallery::enroll(const std::string& identity, const Tensor& embeddings) {
  const int64_t dim = verifier_.manifest().embedding_dim;
  if (identity.empty()) throw Error(ErrorCode::InvalidArgument, "enroll: empty identity name");
  if (embeddings.shape.size() != 2 || embeddings.shape[1] != dim || embeddings.rows() < 1) {
    throw Error(ErrorCode::InvalidArgument, "enroll " + identity + ": expected (N >= 1, " + std::to_string(dim) + ") embeddings");
  }
  auto& rows = rows_[identity];
  rows.insert(rows.end(), embeddings.data.begin(), embeddings.data.end());
}

void Gallery::enroll_files(const std::string& identity, const std::vector<std::string>& paths) {
  enroll(identity, verifier_.embed_files(paths));
}

bool Gallery::remove(const std::string& identity) { return rows_.erase(identity) > 0; }

float Gallery::score_identity(const float* query, const std::vector<float>& rows) {
  const Manifest& m = verifier_.manifest();
  const int64_t dim = m.embedding_dim, n = static_cast<int64_t>(rows.size()) / dim;
  if (aggregate_ == "template") {  // the mean embedding, re-normalised when the embeddings are L2-normalised
    Tensor t({1, dim});
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < dim; ++k) t.data[static_cast<std::size_t>(k)] += rows[static_cast<std::size_t>(i * dim + k)] / static_cast<float>(n);
    if (m.l2_normalized) {
      double norm = 0;
      for (float v : t.data) norm += static_cast<double>(v) * v;
      norm = std::sqrt(norm);
      if (norm > 0) for (float& v : t.data) v = static_cast<float>(v / norm);
    }
    return verifier_.score(rows_tensor(query, 1, dim), t).at(0);
  }
  Tensor q({n, dim});
  for (int64_t i = 0; i < n; ++i) std::copy(query, query + dim, q.row(i));
  const std::vector<float> s = verifier_.score(q, rows_tensor(rows.data(), n, dim));
  if (aggregate_ == "mean") {
    double sum = 0;
    for (float v : s) sum += v;
    return static_cast<float>(sum / static_cast<double>(n));
  }
  return spec_.same_when == "high" ? *std::max_element(s.begin(), s.end()) : *std::min_element(s.begin(), s.end());
}

Identification Gallery::identify(const float* embedding, int top_k) {
  if (top_k < 1) throw Error(ErrorCode::InvalidArgument, "identify: top_k " + std::to_string(top_k) + ", expected >= 1");
  Identification out;
  out.spec = spec_;
  out.aggregate = aggregate_;
  const int64_t dim = verifier_.manifest().embedding_dim;
  for (const auto& [name, rows] : rows_) {
    const float s = score_identity(embedding, rows);
    out.candidates.push_back({name, s, spec_.is_match(s), static_cast<int>(static_cast<int64_t>(rows.size()) / dim)});
  }
  const bool high = spec_.same_when == "high";
  std::stable_sort(out.candidates.begin(), out.candidates.end(),
                   [high](const Candidate& a, const Candidate& b) { return high ? a.score > b.score : a.score < b.score; });
  if (out.candidates.size() > static_cast<std::size_t>(top_k)) out.candidates.resize(static_cast<std::size_t>(top_k));
  if (!out.candidates.empty() && out.candidates.front().match) out.identity = out.candidates.front().identity;
  return out;
}

Identification Gallery::identify_file(const std::string& path, int top_k) {
  const Tensor e = verifier_.embed_files({path});
  return identify(e.row(0), top_k);
}

}  // namespace siamese
