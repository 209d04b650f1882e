// Image preprocessing, mirroring runtime/preprocess.py step for step (a ctest compares both on the same files).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "siamese/tensor.hpp"

namespace siamese {

struct Preprocessing {
  int height = 0;
  int width = 0;
  std::string color = "rgb";           // rgb | gray
  std::string resize = "stretch";      // stretch | shorter-side+center-crop | letterbox
  std::string interpolation = "bilinear";  // nearest | bilinear | bicubic | area
  int letterbox_fill = 0;
  double scale = 1.0 / 255.0;
  std::vector<double> mean{0.0};
  std::vector<double> std{1.0};

  int channels() const { return color == "gray" ? 1 : 3; }
  // Throws Error(Bundle) naming `where` for anything runtime/preprocess.py's Preprocessing would refuse.
  void validate(const std::string& where) const;
};

// Read and decode an image file into uint8 RGB (CV_8UC3) or gray (CV_8UC1); Error(Image) names the file.
cv::Mat read_image(const std::string& path);
cv::Mat decode_image(const std::vector<uint8_t>& bytes, const std::string& name);
// Bring a decoded image (8/16-bit or float [0,1]; 1, 3 or 4 channels; BGR when `bgr`) to uint8 RGB or gray.
cv::Mat normalize_image(const cv::Mat& image, bool bgr, const std::string& name);

// One image -> height*width*channels floats at `out` (HWC).
void preprocess_image(const cv::Mat& image, const Preprocessing& spec, float* out, bool bgr = false,
                      const std::string& name = "image");
// Image files -> an NHWC batch.
Tensor preprocess_files(const std::vector<std::string>& paths, const Preprocessing& spec);

}  // namespace siamese
