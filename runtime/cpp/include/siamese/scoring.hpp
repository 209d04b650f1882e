// Score semantics (mirrors runtime/scoring.py and runtime/heads.py): what the number is and when it is a match.
#pragma once

#include <cstddef>
#include <string>

namespace siamese {

struct ScoreSpec {
  std::string kind = "probability";  // "probability" or "distance"
  std::string same_when = "high";    // "high" or "low": which direction means the same identity
  double threshold = 0.5;            // a score exactly at the threshold is a match
  std::string threshold_source = "default";

  bool is_match(double score) const;
  std::string describe() const;  // "distance (match when score <= 0.917, threshold: ...)"
};

// runtime/heads.py's euclidean_distance: sqrt(max(sum((a-b)^2), epsilon)) summed in double, rounded once.
float euclidean_distance(const float* a, const float* b, std::size_t dim, double epsilon);

constexpr double kDefaultEpsilon = 1e-7;  // runtime.heads.DEFAULT_EPSILON, when the manifest has none

}  // namespace siamese
