// ONNX Runtime (CPU provider): the bundle's FP32 graphs as they are, any batch size. Built when ONNX Runtime is found.
#include <algorithm>
#include <memory>
#include <optional>

#include <onnxruntime_cxx_api.h>

#include "backends.hpp"
#include "siamese/error.hpp"

namespace siamese::detail {
namespace {

Ort::Env& env() {
  static Ort::Env e(ORT_LOGGING_LEVEL_WARNING, "siamese_runtime");
  return e;
}

class OrtBackend : public Backend {
 public:
  OrtBackend(const Manifest& m, const BackendOptions& options) : Backend(m) {
    require_fp32("onnxruntime", options);
    Ort::SessionOptions so;
    if (options.threads > 0) so.SetIntraOpNumThreads(options.threads);
    so.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);
    embed_.emplace(open(m.path(m.embedding_file), so));
    if (m.head_kind == "learned") {
      // the head runs on the calling thread alone: a spinning pool of its own slowed the next embedding call by a
      // third (the Python runtime's CpuHead measured it)
      Ort::SessionOptions head;
      head.SetIntraOpNumThreads(1);
      head.AddConfigEntry("session.intra_op.allow_spinning", "0");
      head.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);
      head_.emplace(open(m.path(m.head_file), head));
    }
  }
  std::string name() const override { return "onnxruntime-cpu"; }
  std::string precision() const override { return "fp32"; }
  std::string device() const override { return "cpu"; }

  Tensor embed(const Tensor& batch) override {
    check_batch(batch);
    const char* in[] = {"image"};
    return run(*embed_, in, {&batch}, manifest_.embedding_dim);
  }

 protected:
  std::vector<float> score_learned(const Tensor& ea, const Tensor& eb) override {
    const char* in[] = {"embedding_a", "embedding_b"};
    return run(*head_, in, {&ea, &eb}, 1).data;
  }

 private:
  static Ort::Session open(const std::string& path, const Ort::SessionOptions& so) {
    try {
      return Ort::Session(env(), path.c_str(), so);
    } catch (const Ort::Exception& e) {
      throw Error(ErrorCode::Backend, path + ": ONNX Runtime cannot load it (" + e.what() + ")");
    }
  }

  Tensor run(Ort::Session& session, const char* const* names, const std::vector<const Tensor*>& inputs, int64_t width) {
    const Ort::MemoryInfo mem = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
    std::vector<Ort::Value> values;
    for (const Tensor* t : inputs) {
      values.push_back(Ort::Value::CreateTensor<float>(mem, const_cast<float*>(t->data.data()), t->data.size(),
                                                       t->shape.data(), t->shape.size()));
    }
    const char* out_name[] = {width == 1 ? "score" : "embedding"};
    try {
      auto outs = session.Run(Ort::RunOptions{nullptr}, names, values.data(), values.size(), out_name, 1);
      const float* p = outs[0].GetTensorData<float>();
      Tensor out({inputs[0]->rows(), width});
      std::copy(p, p + out.data.size(), out.data.begin());
      return out;
    } catch (const Ort::Exception& e) {
      throw Error(ErrorCode::Backend, std::string("ONNX Runtime: ") + e.what());
    }
  }

  std::optional<Ort::Session> embed_, head_;
};

}  // namespace

std::unique_ptr<Backend> make_onnxruntime_backend(const Manifest& manifest, const BackendOptions& options) {
  return std::make_unique<OrtBackend>(manifest, options);
}

}  // namespace siamese::detail
