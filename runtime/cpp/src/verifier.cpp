#include "siamese/verifier.hpp"

#include <cmath>
#include <fstream>
#include <iomanip>
#include <sstream>

#include <nlohmann/json.hpp>

#include "siamese/error.hpp"

namespace siamese {

std::string Verification::describe() const {
  std::ostringstream s;
  const bool high = spec.same_when == "high";
  const char* cmp = match ? (high ? ">=" : "<=") : (high ? "<" : ">");
  s << spec.kind << " " << score << " " << cmp << " threshold " << spec.threshold << ": "
    << (match ? "match" : "no match") << " (" << (high ? "high" : "low") << " means the same identity; threshold "
    << spec.threshold_source << ")";
  return s.str();
}

ScoreSpec parity_spec(const Manifest& m, const std::string& backend, const std::string& precision) {
  ScoreSpec spec = m.score;
  if (m.parity_file.empty()) return spec;
  const std::string path = m.path(m.parity_file);
  std::ifstream in(path);
  if (!in) return spec;  // listed files are checked at load; an unlisted report is only advice
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::Bundle, path + ": not valid JSON (" + e.what() + ")");
  }
  if (!doc.is_object() || !doc.contains("results") || !doc.at("results").is_array()) return spec;
  for (const auto& row : doc.at("results")) {
    if (!row.is_object() || row.value("backend", "") != backend || row.value("precision", "") != precision) continue;
    const auto t = row.find("threshold");
    if (t == row.end() || t->is_null()) continue;
    if (!t->is_number() || !std::isfinite(t->get<double>())) {
      throw Error(ErrorCode::Bundle, path + ": parity row " + backend + " " + precision + ": threshold " + t->dump() +
                                         " is not a finite number");
    }
    std::ostringstream source;
    source << "refitted for " << precision << " on " << backend << " (parity; was " << std::setprecision(4) << spec.threshold
           << ")";
    spec.threshold = t->get<double>();
    spec.threshold_source = source.str();
  }
  return spec;
}

Verifier::Verifier(const std::string& bundle_dir, const std::string& backend, const BackendOptions& options)
    : manifest_(load_manifest(bundle_dir)) {
  backend_ = make_backend(backend, manifest_, options, &selection_);
  spec_ = parity_spec(manifest_, backend_->name(), backend_->precision());
}

void Verifier::set_threshold(double threshold, const std::string& source) {
  if (!std::isfinite(threshold)) throw Error(ErrorCode::InvalidArgument, "threshold: expected a finite number");
  spec_.threshold = threshold;
  spec_.threshold_source = source;
}

Tensor Verifier::embed_files(const std::vector<std::string>& paths) {
  if (paths.empty()) throw Error(ErrorCode::InvalidArgument, "embed: no image files given");
  return backend_->embed(preprocess_files(paths, manifest_.preprocessing));
}

Tensor Verifier::embed_images(const std::vector<cv::Mat>& images, bool bgr) {
  if (images.empty()) throw Error(ErrorCode::InvalidArgument, "embed: no images given");
  const Preprocessing& p = manifest_.preprocessing;
  Tensor batch({static_cast<int64_t>(images.size()), p.height, p.width, p.channels()});
  for (std::size_t i = 0; i < images.size(); ++i) {
    preprocess_image(images[i], p, batch.row(static_cast<int64_t>(i)), bgr, "image " + std::to_string(i));
  }
  return backend_->embed(batch);
}

Verification Verifier::decide(float score) const {
  Verification v;
  v.score = score;
  v.spec = spec_;
  v.match = spec_.is_match(score);
  return v;
}

Verification Verifier::verify_files(const std::string& a, const std::string& b) {
  const Tensor e = embed_files({a, b});
  Tensor ea({1, e.shape[1]}), eb({1, e.shape[1]});
  std::copy(e.row(0), e.row(0) + e.shape[1], ea.data.begin());
  std::copy(e.row(1), e.row(1) + e.shape[1], eb.data.begin());
  return decide(score(ea, eb).at(0));
}

}  // namespace siamese
