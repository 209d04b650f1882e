// Internal: how a batch is split into runs a TensorRT plan accepts, and the TensorRT library's version at run time.
// The same rule as runtime/engines.py's plan_chunks (tests/test_gpu_cpp_chunks.py compiles this header and checks
// both give the same runs): at most the profile's maximum per run, the last run padded up to its minimum with
// zeros whose outputs are dropped. Header-only and free of TensorRT and CUDA, so it is checked on any machine.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace siamese::detail {

struct Chunk {
  int64_t start = 0, stop = 0;  // rows start..stop of the batch
  int64_t run = 0;              // the batch size the plan runs: >= stop - start (padded up to the minimum)
  int64_t size() const { return stop - start; }
};

inline std::vector<Chunk> plan_chunks(int64_t n, int64_t min_batch, int64_t max_batch) {
  if (n < 0) throw std::invalid_argument("batch size " + std::to_string(n) + ": expected >= 0");
  if (min_batch < 1 || max_batch < min_batch) {
    throw std::invalid_argument("batch profile " + std::to_string(min_batch) + ".." + std::to_string(max_batch) +
                                ": expected 1 <= min <= max");
  }
  std::vector<Chunk> chunks;
  for (int64_t start = 0; start < n; start += max_batch) {
    const int64_t stop = start + max_batch < n ? start + max_batch : n;
    chunks.push_back({start, stop, stop - start < min_batch ? min_batch : stop - start});
  }
  return chunks;
}

// getInferLibVersion()'s number (major * 10000 + minor * 100 + patch) -> "10.3.0", as runtime/engines.py's
// trt_version_from_int: the library loaded decides which plans run, not the headers this was compiled with.
inline std::string trt_version_from_int(int32_t value) {
  if (value < 10000) throw std::invalid_argument("TensorRT library version " + std::to_string(value));
  return std::to_string(value / 10000) + "." + std::to_string(value / 100 % 100) + "." + std::to_string(value % 100);
}

}  // namespace siamese::detail
