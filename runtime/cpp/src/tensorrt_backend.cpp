// TensorRT 10/11: the bundle's plan for this GPU (plans.cpp picks it), IO tensors by name, enqueueV3.
// Not compiled on machines without TensorRT and CUDA (SIAMESE_WITH_TENSORRT); a learned head runs on the CPU
// through the OpenCV head graph (a few dense layers: exact and fast there).
#include <NvInfer.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>

#include "backends.hpp"
#include "opencv_net.hpp"
#include "plans.hpp"
#include "siamese/error.hpp"

namespace siamese::detail {
namespace {

void cuda_check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw Error(ErrorCode::Backend, std::string("CUDA: ") + what + ": " + cudaGetErrorString(status));
}

class Logger : public nvinfer1::ILogger {
 public:
  void log(Severity severity, const char* message) noexcept override {
    if (severity <= Severity::kERROR) last = message;
  }
  std::string last;
};

struct DeviceBuffer {
  void* ptr = nullptr;
  explicit DeviceBuffer(std::size_t bytes) { cuda_check(cudaMalloc(&ptr, bytes), "cudaMalloc"); }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

PlanMachine this_machine(int device) {
  cudaDeviceProp prop{};
  cuda_check(cudaSetDevice(device), "cudaSetDevice");
  cuda_check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  PlanMachine m;
  m.trt_version = std::to_string(NV_TENSORRT_MAJOR) + "." + std::to_string(NV_TENSORRT_MINOR) + "." +
                  std::to_string(NV_TENSORRT_PATCH) + "." + std::to_string(NV_TENSORRT_BUILD);
  m.cc_major = prop.major;
  m.cc_minor = prop.minor;
  return m;
}

class TensorRTBackend : public Backend {
 public:
  TensorRTBackend(const Manifest& m, const BackendOptions& options) : Backend(m) {
    const PlanMachine here = this_machine(options.device);
    cudaDeviceProp prop{};
    cuda_check(cudaGetDeviceProperties(&prop, options.device), "cudaGetDeviceProperties");
    device_ = prop.name;
    const auto plans = check_plans(m, here);
    if (plans.empty() || !plans.front().reasons.empty()) {
      std::string why = "no plan in " + m.bundle_dir + " runs on TensorRT " + here.trt_version + " / sm" +
                        std::to_string(here.cc_major) + std::to_string(here.cc_minor);
      for (const auto& p : plans) why += "; " + p.plan + ": " + p.reasons.front();
      throw Error(ErrorCode::Backend, why + " (build one here: python -m export.tensorrt_build --bundle " + m.bundle_dir + ")");
    }
    const PlanCheck& plan = plans.front();
    precision_ = plan.precision;
    max_batch_ = plan.max_batch;
    std::ifstream in(plan.plan, std::ios::binary);
    const std::vector<char> blob((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    runtime_.reset(nvinfer1::createInferRuntime(logger_));
    if (runtime_) engine_.reset(runtime_->deserializeCudaEngine(blob.data(), blob.size()));
    if (engine_) context_.reset(engine_->createExecutionContext());
    if (!context_) throw Error(ErrorCode::Backend, plan.plan + ": TensorRT cannot load the plan (" + logger_.last + ")");
    for (int32_t i = 0; i < engine_->getNbIOTensors(); ++i) {
      const char* tensor = engine_->getIOTensorName(i);
      const bool input = engine_->getTensorIOMode(tensor) == nvinfer1::TensorIOMode::kINPUT;
      if (std::string(tensor) != (input ? "image" : "embedding")) {
        throw Error(ErrorCode::Backend, plan.plan + ": IO tensor '" + tensor + "', expected image -> embedding");
      }
    }
    const Preprocessing& p = m.preprocessing;
    const std::size_t row = static_cast<std::size_t>(p.height) * p.width * p.channels();
    input_.emplace(sizeof(float) * row * max_batch_);
    output_.emplace(sizeof(float) * static_cast<std::size_t>(m.embedding_dim) * max_batch_);
    cuda_check(cudaStreamCreate(&stream_), "cudaStreamCreate");
    if (m.head_kind == "learned") {
      if (m.opencv_head_file.empty()) throw Error(ErrorCode::Backend, m.bundle_dir + ": a learned head but no head graph for the CPU");
      head_.emplace(m.path(m.opencv_head_file), std::vector<std::string>{"embedding_a", "embedding_b"});
    }
  }
  ~TensorRTBackend() override {
    if (stream_) cudaStreamDestroy(stream_);
  }
  std::string name() const override { return "tensorrt"; }
  std::string precision() const override { return precision_; }
  std::string device() const override { return device_; }

  Tensor embed(const Tensor& batch) override {
    check_batch(batch);
    const int64_t dim = manifest_.embedding_dim;
    Tensor out({batch.rows(), dim});
    for (int64_t start = 0; start < batch.rows(); start += max_batch_) {
      const int64_t n = std::min<int64_t>(max_batch_, batch.rows() - start);
      const Preprocessing& p = manifest_.preprocessing;
      nvinfer1::Dims4 shape(n, p.height, p.width, p.channels());
      if (!context_->setInputShape("image", shape) || !context_->setTensorAddress("image", input_->ptr) ||
          !context_->setTensorAddress("embedding", output_->ptr)) {
        throw Error(ErrorCode::Backend, "TensorRT: cannot bind the batch (" + logger_.last + ")");
      }
      const std::size_t in_bytes = sizeof(float) * static_cast<std::size_t>(n * batch.row_size());
      cuda_check(cudaMemcpyAsync(input_->ptr, batch.row(start), in_bytes, cudaMemcpyHostToDevice, stream_), "copy in");
      if (!context_->enqueueV3(stream_)) throw Error(ErrorCode::Backend, "TensorRT: enqueueV3 failed (" + logger_.last + ")");
      cuda_check(cudaMemcpyAsync(out.row(start), output_->ptr, sizeof(float) * static_cast<std::size_t>(n * dim),
                                 cudaMemcpyDeviceToHost, stream_), "copy out");
      cuda_check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
    }
    return out;
  }

 protected:
  std::vector<float> score_learned(const Tensor& ea, const Tensor& eb) override { return head_->run({&ea, &eb}).data; }

 private:
  Logger logger_;  // outlives every TensorRT object (declared first, destroyed last)
  std::unique_ptr<nvinfer1::IRuntime> runtime_;
  std::unique_ptr<nvinfer1::ICudaEngine> engine_;
  std::unique_ptr<nvinfer1::IExecutionContext> context_;
  std::optional<DeviceBuffer> input_, output_;
  cudaStream_t stream_ = nullptr;
  std::optional<OpenCVNet> head_;
  std::string precision_, device_;
  int max_batch_ = 1;
};

}  // namespace

std::unique_ptr<Backend> make_tensorrt_backend(const Manifest& manifest, const BackendOptions& options) {
  return std::make_unique<TensorRTBackend>(manifest, options);
}

}  // namespace siamese::detail
