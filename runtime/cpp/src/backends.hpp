// Internal: the factories of the backends compiled in (each behind its CMake option).
#pragma once

#include <memory>
#include <string>

#include "siamese/backend.hpp"

namespace siamese::detail {

std::unique_ptr<Backend> make_opencv_backend(const Manifest& manifest, const BackendOptions& options);
#ifdef SIAMESE_WITH_ONNXRUNTIME
std::unique_ptr<Backend> make_onnxruntime_backend(const Manifest& manifest, const BackendOptions& options);
#endif
#ifdef SIAMESE_WITH_TENSORRT
// Throws Error(Backend) when no plan in the bundle matches this GPU and TensorRT version (the message lists why).
std::unique_ptr<Backend> make_tensorrt_backend(const Manifest& manifest, const BackendOptions& options);
#endif

}  // namespace siamese::detail
