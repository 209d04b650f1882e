// Internal: the factories of the backends compiled in (each behind its CMake option).
#pragma once

#include <memory>
#include <string>

#include "siamese/backend.hpp"

namespace siamese::detail {

// Error(Backend) when options ask for a precision other than fp32 (the backends that run the FP32 graphs only).
void require_fp32(const std::string& name, const BackendOptions& options);

std::unique_ptr<Backend> make_opencv_backend(const Manifest& manifest, const BackendOptions& options);
#ifdef SIAMESE_WITH_ONNXRUNTIME
std::unique_ptr<Backend> make_onnxruntime_backend(const Manifest& manifest, const BackendOptions& options);
#endif
#ifdef SIAMESE_WITH_OPENVINO
// fp32 (f32 inference, ACCURACY), bf16 (the FP32 graph with a bf16 inference precision, where the CPU has native
// bf16), int8 (the bundle's QDQ graph); Error(Backend) saying why when the precision cannot run here.
std::unique_ptr<Backend> make_openvino_backend(const Manifest& manifest, const BackendOptions& options);
#endif
#ifdef SIAMESE_WITH_TENSORRT
// Throws Error(Backend) when no plan in the bundle matches this GPU and TensorRT version (the message lists why).
std::unique_ptr<Backend> make_tensorrt_backend(const Manifest& manifest, const BackendOptions& options);
#endif

}  // namespace siamese::detail
