#include "siamese/verifier.hpp"

#include <sstream>

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

Verifier::Verifier(const std::string& bundle_dir, const std::string& backend, const BackendOptions& options)
    : manifest_(load_manifest(bundle_dir)) {
  backend_ = make_backend(backend, manifest_, options, &selection_);
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
  v.spec = manifest_.score;
  v.match = manifest_.score.is_match(score);
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
