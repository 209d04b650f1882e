// The Keras reference of a bundle (raw files listed in the manifest) and parity against it (runtime/parity.py).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "siamese/backend.hpp"

namespace siamese {

struct Reference {
  Tensor inputs;      // preprocessed NHWC
  Tensor embeddings;  // (N, dim)
  std::vector<float> scores;
  std::vector<int64_t> pair_a, pair_b;
};

// Throws Error(Bundle) naming the file when a raw array is missing, of the wrong size, or indexes out of range.
Reference load_reference(const Manifest& manifest);

// runtime/parity.py's tolerances (FP32_TOLERANCES, FP16_TOLERANCES), the defaults of siamese-cli parity;
// tests/test_cpp_tolerances.py checks they equal the Python ones, and ctest passes the Python values explicitly.
constexpr double kFp32EmbeddingRel = 1e-4;
constexpr double kFp32ScoreAbs = 1e-5;
constexpr double kFp16MinCosine = 0.999;
constexpr double kFp16MaxFlipRate = 0.01;

struct Parity {
  double embedding_max_abs = 0, embedding_rel = 0, min_cosine = 1, score_max_abs = 0;
  int decision_flips = 0, pairs = 0, images = 0;
};

// Run the reference inputs through `backend` and compare, as runtime.parity.compare does.
Parity measure_parity(Backend& backend, const Reference& reference, const ScoreSpec& spec);

}  // namespace siamese
