#include "siamese/scoring.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace siamese {

bool ScoreSpec::is_match(double score) const {
  return same_when == "high" ? score >= threshold : score <= threshold;
}

std::string ScoreSpec::describe() const {
  std::ostringstream s;
  s << kind << " (match when score " << (same_when == "high" ? ">=" : "<=") << " " << threshold
    << ", threshold: " << threshold_source << ")";
  return s.str();
}

float euclidean_distance(const float* a, const float* b, std::size_t dim, double epsilon) {
  double sum = 0.0;
  for (std::size_t i = 0; i < dim; ++i) {
    const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    sum += d * d;
  }
  return static_cast<float>(std::sqrt(std::max(sum, epsilon)));
}

}  // namespace siamese
