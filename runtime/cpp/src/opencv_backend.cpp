// The always-built backend: the bundle's OpenCV variants (export/opencv_variant.py) on OpenCV's DNN module.
#include <memory>
#include <optional>

#include <opencv2/core/utility.hpp>

#include "backends.hpp"
#include "opencv_net.hpp"
#include "siamese/error.hpp"

namespace siamese::detail {
namespace {

class OpenCVBackend : public Backend {
 public:
  OpenCVBackend(const Manifest& m, const BackendOptions& options) : Backend(m) {
    require_fp32("opencv", options);
    if (m.opencv_embedding_file.empty()) {
      throw Error(ErrorCode::Backend, m.path(kManifestName) + ": no OpenCV DNN graph in this bundle (" +
                                          (m.opencv_error.empty() ? "exported with --no-opencv, or by an older export.build"
                                                                  : m.opencv_error) +
                                          "); re-export it, or use another backend");
    }
    if (options.threads > 0) cv::setNumThreads(options.threads);
    embed_.emplace(m.path(m.opencv_embedding_file), std::vector<std::string>{"image"});
    if (m.head_kind == "learned") {
      if (m.opencv_head_file.empty()) {
        throw Error(ErrorCode::Backend, m.path(kManifestName) + ": a learned head but no OpenCV head graph");
      }
      head_.emplace(m.path(m.opencv_head_file), std::vector<std::string>{"embedding_a", "embedding_b"});
    }
  }
  std::string name() const override { return "opencv-dnn"; }
  std::string precision() const override { return "fp32"; }
  std::string device() const override { return "cpu"; }

  Tensor embed(const Tensor& batch) override {
    check_batch(batch);
    return embed_->run({&batch});
  }

 protected:
  std::vector<float> score_learned(const Tensor& ea, const Tensor& eb) override {
    Tensor s = head_->run({&ea, &eb});
    return s.data;
  }

 private:
  std::optional<OpenCVNet> embed_, head_;
};

}  // namespace

std::unique_ptr<Backend> make_opencv_backend(const Manifest& manifest, const BackendOptions& options) {
  return std::make_unique<OpenCVBackend>(manifest, options);
}

}  // namespace siamese::detail
