// The Backend base (shape checks, euclidean scoring) and backend selection.
#include "siamese/backend.hpp"

#include "backends.hpp"
#include "siamese/error.hpp"

namespace siamese {

void Backend::check_batch(const Tensor& batch) const {
  const Preprocessing& p = manifest_.preprocessing;
  const std::vector<int64_t> want{batch.rows(), p.height, p.width, p.channels()};
  if (batch.shape != want || batch.rows() < 1 || batch.data.size() != static_cast<std::size_t>(batch.rows() * batch.row_size())) {
    throw Error(ErrorCode::InvalidArgument, "embed: expected an N x " + std::to_string(p.height) + " x " +
                                                std::to_string(p.width) + " x " + std::to_string(p.channels()) +
                                                " float32 batch (NHWC, N >= 1) for bundle " + manifest_.name);
  }
}

std::vector<float> Backend::score(const Tensor& ea, const Tensor& eb) {
  const int64_t dim = manifest_.embedding_dim;
  if (ea.shape != eb.shape || ea.shape.size() != 2 || ea.shape[1] != dim) {
    throw Error(ErrorCode::InvalidArgument,
                "score: expected two (N, " + std::to_string(dim) + ") embedding tensors of the same shape");
  }
  if (manifest_.head_kind == "learned") return score_learned(ea, eb);
  std::vector<float> out(static_cast<std::size_t>(ea.rows()));
  for (int64_t i = 0; i < ea.rows(); ++i) {
    out[static_cast<std::size_t>(i)] = euclidean_distance(ea.row(i), eb.row(i), static_cast<std::size_t>(dim), manifest_.epsilon);
  }
  return out;
}

std::vector<std::string> built_backends() {
  std::vector<std::string> out;
#ifdef SIAMESE_WITH_TENSORRT
  out.push_back("tensorrt");
#endif
#ifdef SIAMESE_WITH_ONNXRUNTIME
  out.push_back("onnxruntime");
#endif
  out.push_back("opencv");
  return out;
}

namespace {

[[noreturn]] void not_built(const std::string& name, const std::string& how) {
  throw Error(ErrorCode::Backend, "backend " + name + ": not built into this library (" + how + ")");
}

}  // namespace

std::unique_ptr<Backend> make_backend(const std::string& name, const Manifest& manifest, const BackendOptions& options,
                                      std::string* reason) {
  auto say = [&](const std::string& why) {
    if (reason) *reason = why;
  };
  if (name == "opencv" || name == "onnxruntime" || name == "tensorrt") say(name + ": asked for");
  if (name == "opencv") return detail::make_opencv_backend(manifest, options);
#ifdef SIAMESE_WITH_ONNXRUNTIME
  if (name == "onnxruntime") return detail::make_onnxruntime_backend(manifest, options);
#else
  if (name == "onnxruntime") not_built(name, "configure with ONNX Runtime: find_package(onnxruntime) or ONNXRUNTIME_ROOT");
#endif
#ifdef SIAMESE_WITH_TENSORRT
  if (name == "tensorrt") return detail::make_tensorrt_backend(manifest, options);
#else
  if (name == "tensorrt") not_built(name, "configure where TensorRT and CUDA are installed: NvInfer.h, nvinfer, cudart");
#endif
  if (name != "auto") {
    throw Error(ErrorCode::InvalidArgument, "backend '" + name + "': expected auto, opencv, onnxruntime or tensorrt");
  }
  std::string tried;
#ifdef SIAMESE_WITH_TENSORRT
  try {
    auto b = detail::make_tensorrt_backend(manifest, options);
    say("auto: tensorrt (a plan in the bundle matches this GPU and TensorRT)");
    return b;
  } catch (const Error& e) {
    tried += "tensorrt: " + std::string(e.what()) + "; ";
  }
#endif
#ifdef SIAMESE_WITH_ONNXRUNTIME
  say("auto: onnxruntime (" + tried + "order tried: tensorrt > onnxruntime > opencv)");
  return detail::make_onnxruntime_backend(manifest, options);
#else
  say("auto: opencv (" + tried + "onnxruntime not built; order tried: tensorrt > onnxruntime > opencv)");
  return detail::make_opencv_backend(manifest, options);
#endif
}

}  // namespace siamese
