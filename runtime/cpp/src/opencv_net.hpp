// Internal: an ONNX graph on OpenCV's DNN module, run one row at a time (the OpenCV variants fix the batch to 1).
#pragma once

#include <string>
#include <vector>

#include <opencv2/dnn.hpp>

#include "siamese/tensor.hpp"

namespace siamese::detail {

class OpenCVNet {
 public:
  // Throws Error(Backend) naming `path` when OpenCV cannot import the graph.
  OpenCVNet(const std::string& path, std::vector<std::string> inputs);
  // Every input has N rows; returns (N, out) with out the output's size per row.
  Tensor run(const std::vector<const Tensor*>& inputs);

 private:
  cv::dnn::Net net_;
  std::string path_;
  std::vector<std::string> inputs_;
};

}  // namespace siamese::detail
