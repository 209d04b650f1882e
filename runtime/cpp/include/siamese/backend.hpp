// Backends: what runs the bundle's embedding graph (and a learned head). One per CMake option.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "siamese/manifest.hpp"
#include "siamese/tensor.hpp"

namespace siamese {

struct BackendOptions {
  int threads = 0;        // CPU threads; 0: the library's default
  int device = 0;         // GPU index (TensorRT)
  std::string precision;  // fp32 | fp16 | bf16 | int8; empty: the backend's default (fp32; TensorRT: its plan's)
};

// The precisions a BackendOptions may ask for (check_precision throws Error(InvalidArgument) for any other name).
inline const std::vector<std::string> kPrecisions{"fp32", "fp16", "bf16", "int8"};
void check_precision(const std::string& precision);

class Backend {
 public:
  explicit Backend(const Manifest& manifest) : manifest_(manifest) {}
  virtual ~Backend() = default;
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

  virtual std::string name() const = 0;       // opencv-dnn | onnxruntime-cpu | openvino-cpu | tensorrt
  virtual std::string precision() const = 0;  // fp32 | fp16 | bf16 | int8
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
// "opencv" | "onnxruntime" | "openvino" | "tensorrt" | "auto" (TensorRT plan for this GPU > ONNX Runtime > OpenVINO >
// OpenCV DNN: the first built in that loads this bundle at options.precision). `reason` (if given) says which was
// taken and why, naming what was tried. Throws Error(Backend) naming what is missing or what cannot run here.
std::unique_ptr<Backend> make_backend(const std::string& name, const Manifest& manifest,
                                      const BackendOptions& options = {}, std::string* reason = nullptr);

}  // namespace siamese
