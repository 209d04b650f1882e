// Backends: what runs the bundle's embedding graph (and a learned head). One per CMake option.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "siamese/manifest.hpp"
#include "siamese/tensor.hpp"

namespace siamese {

struct BackendOptions {
  int threads = 0;  // CPU threads; 0: the library's default
  int device = 0;   // GPU index (TensorRT)
};

class Backend {
 public:
  explicit Backend(const Manifest& manifest) : manifest_(manifest) {}
  virtual ~Backend() = default;
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

  virtual std::string name() const = 0;       // opencv-dnn | onnxruntime-cpu | tensorrt
  virtual std::string precision() const = 0;  // fp32 | fp16
  virtual std::string device() const = 0;     // cpu | the GPU's name
  // A preprocessed NHWC batch -> (N, dim) embeddings.
  virtual Tensor embed(const Tensor& batch) = 0;
  // (N, dim) x 2 -> N scores in the manifest's units: the distance for a euclidean head, else the learned head.
  std::vector<float> score(const Tensor& ea, const Tensor& eb);
  const Manifest& manifest() const { return manifest_; }

 protected:
  virtual std::vector<float> score_learned(const Tensor& ea, const Tensor& eb) = 0;
  void check_batch(const Tensor& batch) const;  // Error(InvalidArgument) unless N x H x W x C of the manifest
  Manifest manifest_;
};

// The backends compiled into this library, in the order "auto" tries them.
std::vector<std::string> built_backends();
// "opencv" | "onnxruntime" | "tensorrt" | "auto" (TensorRT plan for this GPU > ONNX Runtime > OpenCV DNN).
// `reason` (if given) says which was taken and why. Throws Error(Backend) naming what is missing.
std::unique_ptr<Backend> make_backend(const std::string& name, const Manifest& manifest,
                                      const BackendOptions& options = {}, std::string* reason = nullptr);

}  // namespace siamese
