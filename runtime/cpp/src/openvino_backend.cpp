// OpenVINO (CPU plugin), as runtime/backends/openvino_backend.py: fp32 asks for f32 inference in ACCURACY mode (the
// FP32 tolerances hold); bf16 runs the same FP32 graph with INFERENCE_PRECISION_HINT bf16 (PERFORMANCE mode) only
// where OpenVINO lists BF16 among the CPU's OPTIMIZATION_CAPABILITIES (AMX or AVX512-BF16: native, not emulated);
// int8 runs the bundle's QDQ graph (embedding.int8_file), whose Q/DQ pairs OpenVINO turns into int8 kernels. The
// compiled model must show layers in the asked precision, else the backend refuses. A learned head runs on
// OpenVINO in f32. Built when CMake finds OpenVINO (a system install or the openvino wheel's SDK).
#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>

#include <openvino/openvino.hpp>

#include "backends.hpp"
#include "chunks.hpp"
#include "siamese/error.hpp"

namespace siamese::detail {
namespace {

constexpr const char* kDevice = "CPU";

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : ", ") + s;
  return out.empty() ? "none reported" : out;
}

std::string describe(const ov::Output<const ov::Node>& port) { return port.get_any_name() + port.get_partial_shape().to_string(); }

// The port's name as the manifest expects it, when the port has that name among its names.
bool named(const ov::Output<const ov::Node>& port, const std::string& name) { return port.get_names().count(name) > 0; }

// runtime/bundle/graph_io.py's _fits: the same rank, and every dimension the graph fixes equal to the wanted one.
bool fits(const ov::PartialShape& shape, const std::vector<int64_t>& want) {
  if (shape.rank().is_dynamic() || shape.rank().get_length() != static_cast<int64_t>(want.size())) return false;
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (want[i] >= 0 && shape[i].is_static() && shape[i].get_length() != want[i]) return false;
  }
  return true;
}

// How many layers of the compiled model run in each precision (runtime_precisions in the Python backend).
std::map<std::string, int> layer_precisions(const ov::CompiledModel& compiled) {
  std::map<std::string, int> counts;
  for (const auto& op : compiled.get_runtime_model()->get_ordered_ops()) {
    const auto& info = op->get_rt_info();
    const auto p = info.find("runtimePrecision"), type = info.find("layerType");
    if (p == info.end() || type == info.end()) continue;
    const std::string layer = type->second.as<std::string>();
    if (layer == "Input" || layer == "Output" || layer == "Const") continue;
    ++counts[p->second.as<std::string>()];
  }
  return counts;
}

class OpenVINOBackend : public Backend {
 public:
  OpenVINOBackend(const Manifest& m, const BackendOptions& options)
      : Backend(m), precision_(options.precision.empty() ? "fp32" : options.precision) {
    try {
      load(m, options);
    } catch (const ov::Exception& e) {
      throw Error(ErrorCode::Backend, std::string("OpenVINO: ") + e.what());
    }
  }
  std::string name() const override { return "openvino-cpu"; }
  std::string precision() const override { return precision_; }
  std::string device() const override { return "cpu"; }

  Tensor embed(const Tensor& batch) override {
    check_batch(batch);
    const Preprocessing& p = manifest_.preprocessing;
    const int64_t dim = manifest_.embedding_dim;
    Tensor out({batch.rows(), dim});
    // a graph with a fixed batch runs exactly that many rows (the last run padded with zeros, their outputs
    // dropped); a dynamic one at most the manifest's batch maximum at a time
    for (const Chunk& ch : plan_chunks(batch.rows(), fixed_batch_ ? fixed_batch_ : 1, fixed_batch_ ? fixed_batch_ : manifest_.batch_max)) {
      const ov::Shape shape{static_cast<std::size_t>(ch.run), static_cast<std::size_t>(p.height),
                            static_cast<std::size_t>(p.width), static_cast<std::size_t>(p.channels())};
      ov::Tensor input;
      if (ch.run == ch.size()) {  // the caller's rows as they are, no copy
        input = ov::Tensor(ov::element::f32, shape, const_cast<float*>(batch.row(ch.start)));
      } else {
        input = ov::Tensor(ov::element::f32, shape);
        float* dst = input.data<float>();
        std::fill(dst, dst + input.get_size(), 0.0f);
        std::copy(batch.row(ch.start), batch.row(ch.stop), dst);
      }
      const ov::Tensor y = infer(embed_request_, {{"image", input}});
      if (y.get_size() != static_cast<std::size_t>(ch.run * dim)) {
        throw Error(ErrorCode::Backend, graph_ + ": OpenVINO returned " + std::to_string(y.get_size()) + " values for " +
                                            std::to_string(ch.run) + " rows of " + std::to_string(dim));
      }
      std::copy(y.data<const float>(), y.data<const float>() + ch.size() * dim, out.row(ch.start));
    }
    return out;
  }

 protected:
  std::vector<float> score_learned(const Tensor& ea, const Tensor& eb) override {
    auto wrap = [](const Tensor& t) {
      return ov::Tensor(ov::element::f32, ov::Shape{static_cast<std::size_t>(t.rows()), static_cast<std::size_t>(t.row_size())},
                        const_cast<float*>(t.data.data()));
    };
    const ov::Tensor y = infer(*head_request_, {{"embedding_a", wrap(ea)}, {"embedding_b", wrap(eb)}});
    if (y.get_size() != static_cast<std::size_t>(ea.rows())) {
      throw Error(ErrorCode::Backend, manifest_.path(manifest_.head_file) + ": OpenVINO returned " +
                                          std::to_string(y.get_size()) + " scores for " + std::to_string(ea.rows()) + " pairs");
    }
    return std::vector<float>(y.data<const float>(), y.data<const float>() + y.get_size());
  }

 private:
  void load(const Manifest& m, const BackendOptions& options) {
    if (precision_ != "fp32" && precision_ != "bf16" && precision_ != "int8") {
      throw Error(ErrorCode::Backend, "backend openvino runs fp32, bf16 or int8, not " + precision_);
    }
    const std::vector<std::string> caps = core_.get_property(kDevice, ov::device::capabilities);
    if (precision_ == "bf16" && std::find(caps.begin(), caps.end(), "BF16") == caps.end()) {
      throw Error(ErrorCode::Backend, "openvino bf16: this CPU has no native bf16 (OpenVINO CPU capabilities: " +
                                          join(caps) + "); use --precision fp32");
    }
    if (precision_ == "int8" && m.int8_file.empty()) {
      throw Error(ErrorCode::Backend, m.path(kManifestName) + ": the bundle has no INT8 graph (export it with --int8)");
    }
    // int8 runs the QDQ graph; fp32 and bf16 the FP32 graph with OpenVINO's own inference precision
    graph_ = m.path(precision_ == "int8" ? m.int8_file : m.embedding_file);
    const std::shared_ptr<ov::Model> model = core_.read_model(graph_);
    check_embedding_io(*model, m);
    ov::AnyMap config{
        ov::hint::inference_precision(precision_ == "bf16" ? ov::element::bf16 : ov::element::f32),
        ov::hint::execution_mode(precision_ == "fp32" ? ov::hint::ExecutionMode::ACCURACY : ov::hint::ExecutionMode::PERFORMANCE)};
    if (options.threads > 0) config.emplace(ov::inference_num_threads(options.threads));
    embed_model_ = core_.compile_model(model, kDevice, config);
    const std::map<std::string, int> layers = layer_precisions(embed_model_);
    const std::vector<std::string> low = precision_ == "bf16" ? std::vector<std::string>{"bf16"}
                                         : precision_ == "int8" ? std::vector<std::string>{"i8", "u8"}
                                                                : std::vector<std::string>{};
    if (!low.empty() && std::none_of(low.begin(), low.end(), [&](const std::string& t) { return layers.count(t) > 0; })) {
      std::string seen;
      for (const auto& [type, count] : layers) seen += (seen.empty() ? "" : ", ") + type + ": " + std::to_string(count);
      throw Error(ErrorCode::Backend, graph_ + ": OpenVINO compiled no layer in " + join(low) + " on this CPU (layers: " +
                                          seen + "); use --precision fp32");
    }
    embed_request_ = embed_model_.create_infer_request();
    if (m.head_kind == "learned") {
      const std::string head = m.path(m.head_file);
      const std::shared_ptr<ov::Model> head_model = core_.read_model(head);
      check_head_io(*head_model, m, head);
      head_model_ = core_.compile_model(
          head_model, kDevice,
          ov::AnyMap{ov::hint::inference_precision(ov::element::f32), ov::hint::execution_mode(ov::hint::ExecutionMode::ACCURACY)});
      head_request_ = head_model_.create_infer_request();
    }
  }

  // runtime/bundle/graph_io.py's check_embedding_io: one input image[N, H, W, C], one output [N, dim] named as the
  // manifest says; Error(Bundle) naming the graph's file and both sides otherwise. Notes a fixed batch size.
  void check_embedding_io(const ov::Model& model, const Manifest& m) {
    const Preprocessing& p = m.preprocessing;
    const std::vector<int64_t> want_in{-1, p.height, p.width, p.channels()};
    const auto inputs = model.inputs();
    const auto outputs = model.outputs();
    if (inputs.size() != 1 || !named(inputs[0], "image") || !fits(inputs[0].get_partial_shape(), want_in)) {
      std::string got;
      for (const auto& port : inputs) got += (got.empty() ? "" : ", ") + describe(port);
      throw Error(ErrorCode::Bundle, graph_ + ": input " + got + ", but the manifest expects image[N, " +
                                         std::to_string(p.height) + ", " + std::to_string(p.width) + ", " +
                                         std::to_string(p.channels()) + "] (NHWC): the graph and " + kManifestName +
                                         " do not belong together");
    }
    if (outputs.size() != 1 || !named(outputs[0], m.embedding_output) ||
        !fits(outputs[0].get_partial_shape(), {-1, m.embedding_dim})) {
      std::string got;
      for (const auto& port : outputs) got += (got.empty() ? "" : ", ") + describe(port);
      throw Error(ErrorCode::Bundle, graph_ + ": output " + got + ", but the manifest expects " + m.embedding_output +
                                         "[N, " + std::to_string(m.embedding_dim) + "]");
    }
    const ov::Dimension batch = inputs[0].get_partial_shape()[0];
    fixed_batch_ = batch.is_static() ? batch.get_length() : 0;
  }

  static void check_head_io(const ov::Model& model, const Manifest& m, const std::string& where) {
    const auto inputs = model.inputs();
    bool ok = inputs.size() == 2 && model.outputs().size() == 1 && named(model.outputs()[0], "score");
    for (const char* name : {"embedding_a", "embedding_b"}) {
      ok = ok && std::any_of(inputs.begin(), inputs.end(), [&](const auto& port) {
             return named(port, name) && fits(port.get_partial_shape(), {-1, m.embedding_dim});
           });
    }
    if (!ok) {
      throw Error(ErrorCode::Bundle, where + ": the manifest expects inputs embedding_a, embedding_b of [P, " +
                                         std::to_string(m.embedding_dim) + "] and one output score");
    }
  }

  ov::Tensor infer(ov::InferRequest& request, const std::vector<std::pair<const char*, ov::Tensor>>& inputs) {
    try {
      for (const auto& [name, tensor] : inputs) request.set_tensor(name, tensor);
      request.infer();
      return request.get_output_tensor(0);
    } catch (const ov::Exception& e) {
      throw Error(ErrorCode::Backend, std::string("OpenVINO: ") + e.what());
    }
  }

  ov::Core core_;
  std::string precision_, graph_;
  int64_t fixed_batch_ = 0;  // 0: the graph takes any batch size
  ov::CompiledModel embed_model_, head_model_;
  ov::InferRequest embed_request_;
  std::optional<ov::InferRequest> head_request_;
};

}  // namespace

std::unique_ptr<Backend> make_openvino_backend(const Manifest& manifest, const BackendOptions& options) {
  return std::make_unique<OpenVINOBackend>(manifest, options);
}

}  // namespace siamese::detail
