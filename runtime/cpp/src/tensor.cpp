#include "siamese/tensor.hpp"

#include <functional>
#include <numeric>

namespace siamese {

Tensor::Tensor(std::vector<int64_t> s) : shape(std::move(s)) {
  int64_t n = std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<int64_t>());
  data.assign(static_cast<std::size_t>(n), 0.0f);
}

int64_t Tensor::row_size() const {
  if (shape.size() < 2) return 1;
  return std::accumulate(shape.begin() + 1, shape.end(), int64_t{1}, std::multiplies<int64_t>());
}

}  // namespace siamese
