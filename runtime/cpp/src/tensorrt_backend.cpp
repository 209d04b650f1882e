// TensorRT 10/11: the bundle's plan for this GPU (plans.cpp picks it), IO tensors by name, enqueueV3.
// Not compiled on machines without TensorRT and CUDA (SIAMESE_WITH_TENSORRT); a learned head runs on the CPU
// through the OpenCV head graph (a few dense layers: exact and fast there). Every CUDA and TensorRT object is
// owned by RAII members, so an exception in the constructor frees what was already made.
#include <NvInfer.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>

#include "backends.hpp"
#include "chunks.hpp"
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

struct Stream {
  cudaStream_t handle = nullptr;
  Stream() { cuda_check(cudaStreamCreate(&handle), "cudaStreamCreate"); }
  ~Stream() {
    if (handle) cudaStreamDestroy(handle);
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
};

PlanMachine this_machine(int device) {
  cudaDeviceProp prop{};
  cuda_check(cudaSetDevice(device), "cudaSetDevice");
  cuda_check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  PlanMachine m;
  m.trt_version = trt_version_from_int(getInferLibVersion());  // the library loaded, not the headers compiled with
  m.cc_major = prop.major;
  m.cc_minor = prop.minor;
  return m;
}

class TensorRTBackend : public Backend {
 public:
  TensorRTBackend(const Manifest& m, const BackendOptions& options) : Backend(m), device_index_(options.device) {
    const PlanMachine here = this_machine(options.device);
    cudaDeviceProp prop{};
    cuda_check(cudaGetDeviceProperties(&prop, options.device), "cudaGetDeviceProperties");
    device_ = prop.name;
    const auto plans = check_plans(m, here);
    const PlanCheck* chosen = choose_plan(plans, options.precision);
    if (chosen == nullptr) {
      const std::string what = options.precision.empty() ? "fp16 or fp32 plan" : options.precision + " plan";
      std::string why = "no " + what + " in " + m.bundle_dir + " runs on TensorRT " + here.trt_version + " / sm" +
                        std::to_string(here.cc_major) + std::to_string(here.cc_minor);
      for (const auto& p : plans) why += "; " + p.plan + ": " + (p.reasons.empty() ? "a " + p.precision + " plan" : p.reasons.front());
      const std::string prec = options.precision.empty() ? "" : " --precision " + options.precision;
      throw Error(ErrorCode::Backend, why + " (build one here: python -m export.tensorrt_build --bundle " + m.bundle_dir + prec + ")");
    }
    const PlanCheck& plan = *chosen;
    precision_ = plan.precision;
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
    // the batch range the engine itself accepts (its optimization profile), not only what the sidecar says
    min_batch_ = engine_->getProfileShape("image", 0, nvinfer1::OptProfileSelector::kMIN).d[0];
    max_batch_ = engine_->getProfileShape("image", 0, nvinfer1::OptProfileSelector::kMAX).d[0];
    if (min_batch_ < 1 || max_batch_ < min_batch_) {
      throw Error(ErrorCode::Backend, plan.plan + ": batch profile " + std::to_string(min_batch_) + ".." +
                                          std::to_string(max_batch_) + ", expected 1 <= min <= max");
    }
    const Preprocessing& p = m.preprocessing;
    const std::size_t row = static_cast<std::size_t>(p.height) * p.width * p.channels();
    input_.emplace(sizeof(float) * row * static_cast<std::size_t>(max_batch_));
    output_.emplace(sizeof(float) * static_cast<std::size_t>(m.embedding_dim) * static_cast<std::size_t>(max_batch_));
    stream_.emplace();
    if (m.head_kind == "learned") {
      if (m.opencv_head_file.empty()) throw Error(ErrorCode::Backend, m.bundle_dir + ": a learned head but no head graph for the CPU");
      head_.emplace(m.path(m.opencv_head_file), std::vector<std::string>{"embedding_a", "embedding_b"});
    }
  }
  std::string name() const override { return "tensorrt"; }
  std::string precision() const override { return precision_; }
  std::string device() const override { return device_; }

  Tensor embed(const Tensor& batch) override {
    check_batch(batch);
    cuda_check(cudaSetDevice(device_index_), "cudaSetDevice");  // the current device is per host thread
    const int64_t dim = manifest_.embedding_dim;
    const Preprocessing& p = manifest_.preprocessing;
    const std::size_t row_bytes = sizeof(float) * static_cast<std::size_t>(batch.row_size());
    const cudaStream_t stream = stream_->handle;
    Tensor out({batch.rows(), dim});
    for (const Chunk& ch : plan_chunks(batch.rows(), min_batch_, max_batch_)) {
      const std::size_t size = static_cast<std::size_t>(ch.size()), run = static_cast<std::size_t>(ch.run);
      nvinfer1::Dims4 shape(ch.run, p.height, p.width, p.channels());
      if (!context_->setInputShape("image", shape) || !context_->setTensorAddress("image", input_->ptr) ||
          !context_->setTensorAddress("embedding", output_->ptr)) {
        throw Error(ErrorCode::Backend, "TensorRT: cannot bind a batch of " + std::to_string(ch.run) + " (" + logger_.last + ")");
      }
      cuda_check(cudaMemcpyAsync(input_->ptr, batch.row(ch.start), size * row_bytes, cudaMemcpyHostToDevice, stream), "copy in");
      if (run > size) {  // padded up to the profile's minimum: zeros, whose outputs are dropped
        cuda_check(cudaMemsetAsync(static_cast<char*>(input_->ptr) + size * row_bytes, 0, (run - size) * row_bytes, stream),
                   "zero the padding");
      }
      if (!context_->enqueueV3(stream)) throw Error(ErrorCode::Backend, "TensorRT: enqueueV3 failed (" + logger_.last + ")");
      cuda_check(cudaMemcpyAsync(out.row(ch.start), output_->ptr, sizeof(float) * size * static_cast<std::size_t>(dim),
                                 cudaMemcpyDeviceToHost, stream), "copy out");
      cuda_check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
    }
    return out;
  }

 protected:
  std::vector<float> score_learned(const Tensor& ea, const Tensor& eb) override { return head_->run({&ea, &eb}).data; }

 private:
  // destroyed in reverse order: head, stream, buffers, then context before engine before runtime, logger last
  Logger logger_;
  std::unique_ptr<nvinfer1::IRuntime> runtime_;
  std::unique_ptr<nvinfer1::ICudaEngine> engine_;
  std::unique_ptr<nvinfer1::IExecutionContext> context_;
  std::optional<DeviceBuffer> input_, output_;
  std::optional<Stream> stream_;
  std::optional<OpenCVNet> head_;
  std::string precision_, device_;
  int device_index_ = 0;
  int64_t min_batch_ = 1, max_batch_ = 1;
};

}  // namespace

std::unique_ptr<Backend> make_tensorrt_backend(const Manifest& manifest, const BackendOptions& options) {
  return std::make_unique<TensorRTBackend>(manifest, options);
}

}  // namespace siamese::detail
