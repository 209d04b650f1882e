// A dense float32 tensor, row-major: images are NHWC, embeddings (N, dim).
#pragma once

#include <cstdint>
#include <vector>

namespace siamese {

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;

  Tensor() = default;
  explicit Tensor(std::vector<int64_t> s);

  int64_t rows() const { return shape.empty() ? 0 : shape[0]; }
  int64_t row_size() const;  // elements per row (product of shape[1:])
  float* row(int64_t i) { return data.data() + i * row_size(); }
  const float* row(int64_t i) const { return data.data() + i * row_size(); }
};

}  // namespace siamese
