#include "opencv_net.hpp"

#include <algorithm>

#include "siamese/error.hpp"

namespace siamese::detail {

OpenCVNet::OpenCVNet(const std::string& path, std::vector<std::string> inputs) : path_(path), inputs_(std::move(inputs)) {
  try {
    net_ = cv::dnn::readNetFromONNX(path);
  } catch (const cv::Exception& e) {
    throw Error(ErrorCode::Backend, path + ": OpenCV " CV_VERSION " cannot import this graph (" + e.msg +
                                        "); re-export the bundle with the current export.build");
  }
  net_.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
  net_.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
}

Tensor OpenCVNet::run(const std::vector<const Tensor*>& inputs) {
  const int64_t n = inputs.at(0)->rows();
  Tensor out;
  for (int64_t i = 0; i < n; ++i) {
    for (std::size_t k = 0; k < inputs.size(); ++k) {
      std::vector<int> dims(inputs[k]->shape.begin(), inputs[k]->shape.end());
      dims[0] = 1;
      cv::Mat blob(static_cast<int>(dims.size()), dims.data(), CV_32F, const_cast<float*>(inputs[k]->row(i)));
      net_.setInput(blob, inputs_[k]);
    }
    cv::Mat y;
    try {
      y = net_.forward();
    } catch (const cv::Exception& e) {
      throw Error(ErrorCode::Backend, path_ + ": OpenCV DNN forward failed (" + e.msg + ")");
    }
    const auto per_row = static_cast<int64_t>(y.total());
    if (i == 0) out = Tensor({n, per_row});
    if (!y.isContinuous() || y.type() != CV_32F || per_row != out.row_size()) {
      throw Error(ErrorCode::Backend, path_ + ": unexpected output from OpenCV DNN");
    }
    std::copy(y.ptr<float>(), y.ptr<float>() + per_row, out.row(i));
  }
  return out;
}

}  // namespace siamese::detail
