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

void check_precision(const std::string& precision) {
  for (const std::string& p : kPrecisions) {
    if (precision == p) return;
  }
  throw Error(ErrorCode::InvalidArgument, "precision '" + precision + "': expected fp32, fp16, bf16 or int8");
}

std::vector<std::string> built_backends() {
  std::vector<std::string> out;
#ifdef SIAMESE_WITH_TENSORRT
  out.push_back("tensorrt");
#endif
#ifdef SIAMESE_WITH_ONNXRUNTIME
  out.push_back("onnxruntime");
#endif
#ifdef SIAMESE_WITH_OPENVINO
  out.push_back("openvino");
#endif
  out.push_back("opencv");
  return out;
}

namespace {

using Factory = std::unique_ptr<Backend> (*)(const Manifest&, const BackendOptions&);

struct Entry {
  const char* name;
  Factory make;     // nullptr: not built into this library
  const char* how;  // how to build it in, or why auto takes it
};

// In the order auto tries them.
const Entry kEntries[] = {
#ifdef SIAMESE_WITH_TENSORRT
    {"tensorrt", detail::make_tensorrt_backend, "a plan in the bundle matches this GPU and TensorRT"},
#else
    {"tensorrt", nullptr, "configure where TensorRT and CUDA are installed: NvInfer.h, nvinfer, cudart"},
#endif
#ifdef SIAMESE_WITH_ONNXRUNTIME
    {"onnxruntime", detail::make_onnxruntime_backend, "ONNX Runtime's CPU provider"},
#else
    {"onnxruntime", nullptr, "configure with ONNX Runtime: find_package(onnxruntime) or ONNXRUNTIME_ROOT"},
#endif
#ifdef SIAMESE_WITH_OPENVINO
    {"openvino", detail::make_openvino_backend, "OpenVINO's CPU plugin"},
#else
    {"openvino", nullptr, "configure with OpenVINO: a system install (OpenVINO_DIR) or pip install openvino"},
#endif
    {"opencv", detail::make_opencv_backend, "OpenCV's DNN module"},
};

}  // namespace

void detail::require_fp32(const std::string& name, const BackendOptions& options) {
  if (!options.precision.empty() && options.precision != "fp32") {
    throw Error(ErrorCode::Backend, "backend " + name + " runs fp32 only, not " + options.precision +
                                        " (openvino runs fp32, bf16 and int8)");
  }
}

std::unique_ptr<Backend> make_backend(const std::string& name, const Manifest& manifest, const BackendOptions& options,
                                      std::string* reason) {
  auto say = [&](const std::string& why) {
    if (reason) *reason = why;
  };
  if (!options.precision.empty()) check_precision(options.precision);
  std::string order;
  for (const Entry& e : kEntries) {
    order += std::string(order.empty() ? "" : " > ") + e.name;
    if (name != e.name) continue;
    if (!e.make) throw Error(ErrorCode::Backend, "backend " + name + ": not built into this library (" + e.how + ")");
    say(name + ": asked for");
    return e.make(manifest, options);
  }
  if (name != "auto") {
    throw Error(ErrorCode::InvalidArgument, "backend '" + name + "': expected auto, opencv, onnxruntime, openvino or tensorrt");
  }
  std::string tried;
  for (const Entry& e : kEntries) {
    if (!e.make) {
      tried += std::string(e.name) + ": not built; ";
      continue;
    }
    try {
      auto b = e.make(manifest, options);
      say("auto: " + std::string(e.name) + " (" + e.how + "; " + tried + "order: " + order + ")");
      return b;
    } catch (const Error& err) {
      if (err.code() != ErrorCode::Backend) throw;  // a bad bundle or argument is not a reason to try the next
      tried += std::string(e.name) + ": " + err.what() + "; ";
    }
  }
  throw Error(ErrorCode::Backend, "auto: no backend built into this library runs this bundle here (" + tried +
                                      "order: " + order + ")");
}

}  // namespace siamese
