// The Keras reference of a bundle (raw files listed in the manifest) and parity against it (runtime/parity.py).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "siamese/backend.hpp"
#include "siamese/tolerances.hpp"  // generated from runtime/parity_tolerances.json

namespace siamese {

struct Reference {
  Tensor inputs;      // preprocessed NHWC
  Tensor embeddings;  // (N, dim)
  std::vector<float> scores;
  std::vector<int64_t> pair_a, pair_b;
};

// Throws Error(Bundle) naming the file when a raw array is missing, of the wrong size, or indexes out of range.
Reference load_reference(const Manifest& manifest);

// runtime/parity_tolerances.json's row for fp32 | fp16 | bf16 | int8; Error(InvalidArgument) for another name.
const Tolerances& tolerances_for(const std::string& precision);

// numpy.quantile(values, q) with its default (linear) method, bit for bit; 0 for no values.
double quantile(std::vector<double> values, double q);

struct ParityCheck {  // runtime.parity.Check: the tolerance asked, what was observed (the least that would pass)
  std::string metric;
  double asked = 0, observed = 0;
  bool passed = false, higher_is_better = false;
};

struct Parity {  // runtime.parity.ParityResult's metrics and checks (no task checks: those need the Python side)
  std::string precision;
  double embedding_max_abs = 0, embedding_rel = 0, min_cosine = 1, score_max_abs = 0, noise_band = 0, flip_rate = 0;
  int decision_flips = 0, flips_outside_band = 0, flips_at_manifest_threshold = 0, pairs = 0, images = 0;
  std::optional<double> threshold;  // refitted for this precision: decisions at the manifest's threshold did not hold
  std::vector<ParityCheck> checks;
  bool passed() const;
};

// runtime.parity.compare: FP32 judged on the numbers; fp16, bf16 and int8 on decisions (noise band, flips outside
// it, flip rate, the threshold refitted when that saves enough flips). Throws Error(InvalidArgument) on shapes.
Parity compare_parity(const std::string& precision, const Tensor& ref_embeddings, const Tensor& got_embeddings,
                      const std::vector<float>& ref_scores, const std::vector<float>& got_scores, const ScoreSpec& spec,
                      const Tolerances& tolerances);

// Run the reference inputs through `backend` and compare_parity at the backend's precision, with `tolerances`
// (default: that precision's row of runtime/parity_tolerances.json).
Parity measure_parity(Backend& backend, const Reference& reference, const ScoreSpec& spec,
                      const std::optional<Tolerances>& tolerances = std::nullopt);

}  // namespace siamese
