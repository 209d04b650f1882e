// Embed images, score pairs, decide: the bundle, a backend and the manifest's score semantics in one object.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "siamese/backend.hpp"

namespace siamese {

struct Verification {
  float score = 0.0f;
  bool match = false;
  ScoreSpec spec;
  std::string describe() const;  // "distance 0.41 <= threshold 0.917: match (...)"
};

// Not thread-safe (OpenCV DNN nets and TensorRT contexts are not): use one Verifier per thread.
class Verifier {
 public:
  // Loads the manifest (checking every file's sha256) and the backend ("auto" picks; see make_backend).
  explicit Verifier(const std::string& bundle_dir, const std::string& backend = "auto",
                    const BackendOptions& options = {});

  const Manifest& manifest() const { return manifest_; }
  Backend& backend() { return *backend_; }
  const std::string& selection() const { return selection_; }  // which backend was taken and why
  // How scores are decided: the manifest's, with the threshold parity.json refitted for this backend and precision
  // when it recorded one (runtime.parity.ParityResult.spec), unless set_threshold gave another.
  const ScoreSpec& spec() const { return spec_; }
  void set_threshold(double threshold, const std::string& source);

  Tensor embed_files(const std::vector<std::string>& paths);
  Tensor embed_images(const std::vector<cv::Mat>& images, bool bgr = true);
  std::vector<float> score(const Tensor& ea, const Tensor& eb) { return backend_->score(ea, eb); }
  Verification decide(float score) const;
  Verification verify_files(const std::string& a, const std::string& b);

 private:
  Manifest manifest_;
  std::unique_ptr<Backend> backend_;
  std::string selection_;
  ScoreSpec spec_;
};

// The manifest's ScoreSpec, with the threshold parity.json recorded for `backend` at `precision` (a refit) if any.
ScoreSpec parity_spec(const Manifest& manifest, const std::string& backend, const std::string& precision);

}  // namespace siamese
