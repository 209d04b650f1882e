// Mirrors runtime/preprocess.py. Compiled with -ffp-contract=off so (x * scale - mean) / std is rounded the
// way numpy rounds it (no fused multiply-add on targets that have one, e.g. aarch64 Jetsons).
#include "siamese/preprocess.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "siamese/error.hpp"

namespace siamese {
namespace fs = std::filesystem;

namespace {

int interpolation_flag(const std::string& name) {
  if (name == "nearest") return cv::INTER_NEAREST;
  if (name == "bilinear") return cv::INTER_LINEAR;
  if (name == "bicubic") return cv::INTER_CUBIC;
  if (name == "area") return cv::INTER_AREA;
  return -1;
}

int round_half_up(double x) { return static_cast<int>(std::floor(x + 0.5)); }  // preprocess._round

cv::Mat resize_to(const cv::Mat& src, int w, int h, int interp) {
  if (src.cols == w && src.rows == h) return src;
  cv::Mat out;
  cv::resize(src, out, cv::Size(w, h), 0, 0, interp);
  return out;
}

cv::Mat to_color(const cv::Mat& img, const std::string& color) {
  cv::Mat out;
  if (color == "gray") {
    if (img.channels() == 1) return img;
    cv::cvtColor(img, out, cv::COLOR_RGB2GRAY);
    return out;
  }
  if (img.channels() == 3) return img;
  cv::cvtColor(img, out, cv::COLOR_GRAY2RGB);
  return out;
}

cv::Mat resize_image(const cv::Mat& img, const Preprocessing& spec) {
  const int h = img.rows, w = img.cols, th = spec.height, tw = spec.width;
  const int interp = interpolation_flag(spec.interpolation);
  if (spec.resize == "stretch") return resize_to(img, tw, th, interp);
  if (spec.resize == "shorter-side+center-crop") {
    const double s = std::max(static_cast<double>(th) / h, static_cast<double>(tw) / w);
    const int nh = std::max(th, round_half_up(h * s)), nw = std::max(tw, round_half_up(w * s));
    cv::Mat out = resize_to(img, nw, nh, interp);
    return out(cv::Rect((nw - tw) / 2, (nh - th) / 2, tw, th));
  }
  const double s = std::min(static_cast<double>(th) / h, static_cast<double>(tw) / w);  // letterbox
  const int nh = std::min(th, std::max(1, round_half_up(h * s))), nw = std::min(tw, std::max(1, round_half_up(w * s)));
  cv::Mat out = resize_to(img, nw, nh, interp);
  cv::Mat canvas(th, tw, img.type(), cv::Scalar::all(spec.letterbox_fill));
  out.copyTo(canvas(cv::Rect((tw - nw) / 2, (th - nh) / 2, nw, nh)));
  return canvas;
}

}  // namespace

void Preprocessing::validate(const std::string& where) const {
  auto bad = [&](const std::string& what) { throw Error(ErrorCode::Bundle, where + ": preprocessing " + what); };
  if (color != "rgb" && color != "gray") bad("color '" + color + "': expected rgb or gray");
  if (resize != "stretch" && resize != "shorter-side+center-crop" && resize != "letterbox") {
    bad("resize '" + resize + "': expected stretch, shorter-side+center-crop or letterbox");
  }
  if (interpolation_flag(interpolation) < 0) {
    bad("interpolation '" + interpolation + "': expected nearest, bilinear, bicubic or area");
  }
  if (letterbox_fill < 0 || letterbox_fill > 255) bad("letterbox_fill: expected a uint8 value 0..255");
  if (height <= 0 || width <= 0) bad("size: expected positive height and width");
  for (const auto* values : {&mean, &std}) {
    const auto n = static_cast<int>(values->size());
    if (n != 1 && n != channels()) bad("mean/std: expected 1 or " + std::to_string(channels()) + " values");
  }
  if (std::find(std.begin(), std.end(), 0.0) != std.end()) bad("std must not contain 0");
}

cv::Mat decode_image(const std::vector<uint8_t>& bytes, const std::string& name) {
  if (bytes.empty()) throw Error(ErrorCode::Image, name + ": empty file, expected an image");
  cv::Mat img;
  try {
    img = cv::imdecode(cv::Mat(1, static_cast<int>(bytes.size()), CV_8U, const_cast<uint8_t*>(bytes.data())),
                       cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception&) {
    img.release();
  }
  if (img.empty()) {
    throw Error(ErrorCode::Image,
                name + ": not a readable image (corrupt, truncated or not an image format OpenCV decodes)");
  }
  return normalize_image(img, true, name);
}

cv::Mat read_image(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw Error(ErrorCode::Image, path + ": is a directory, expected an image file");
  if (!fs::exists(path, ec)) throw Error(ErrorCode::Image, path + ": no such file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::Image, path + ": cannot read");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return decode_image(bytes, path);
}

cv::Mat normalize_image(const cv::Mat& image, bool bgr, const std::string& name) {
  if (image.empty() || image.rows == 0 || image.cols == 0) throw Error(ErrorCode::Image, name + ": empty image");
  const int ch = image.channels();
  if (ch != 1 && ch != 3 && ch != 4) {
    throw Error(ErrorCode::Image, name + ": " + std::to_string(ch) + " channels, expected 1, 3 or 4");
  }
  cv::Mat u8;
  switch (image.depth()) {
    case CV_8U:
      u8 = image;
      break;
    case CV_16U:  // (v * 255 + 32767) // 65535 as preprocess.normalize_image (cv::divide would round)
      u8.create(image.size(), CV_MAKETYPE(CV_8U, ch));
      for (int y = 0; y < image.rows; ++y) {
        const uint16_t* src = image.ptr<uint16_t>(y);
        uint8_t* dst = u8.ptr<uint8_t>(y);
        for (int x = 0; x < image.cols * ch; ++x) dst[x] = static_cast<uint8_t>((src[x] * 255u + 32767u) / 65535u);
      }
      break;
    case CV_32F:
    case CV_64F: {
      cv::Mat f;
      image.convertTo(f, CV_64F);
      double lo = 0, hi = 0;
      cv::minMaxLoc(f.reshape(1), &lo, &hi);
      if (!(lo >= 0.0 && hi <= 1.0)) {
        throw Error(ErrorCode::Image, name + ": float image with values outside [0, 1] (or NaN); pass uint8");
      }
      u8.create(f.size(), CV_MAKETYPE(CV_8U, ch));
      const double* src = f.ptr<double>();
      uint8_t* dst = u8.ptr<uint8_t>();
      for (std::size_t i = 0; i < f.total() * static_cast<std::size_t>(ch); ++i) {
        dst[i] = static_cast<uint8_t>(std::clamp(std::floor(src[i] * 255.0 + 0.5), 0.0, 255.0));
      }
      break;
    }
    default:
      throw Error(ErrorCode::Image, name + ": unsupported pixel depth, expected 8/16-bit or float");
  }
  cv::Mat out;
  if (ch == 1) return u8.clone();
  if (ch == 3 && !bgr) return u8.clone();
  const int code = ch == 3 ? cv::COLOR_BGR2RGB : (bgr ? cv::COLOR_BGRA2RGB : cv::COLOR_RGBA2RGB);
  cv::cvtColor(u8, out, code);
  return out;
}

void preprocess_image(const cv::Mat& image, const Preprocessing& spec, float* out, bool bgr, const std::string& name) {
  const cv::Mat img = resize_image(to_color(normalize_image(image, bgr, name), spec.color), spec);
  const int c = spec.channels();
  const bool any_mean = std::any_of(spec.mean.begin(), spec.mean.end(), [](double v) { return v != 0.0; });
  const bool any_std = std::any_of(spec.std.begin(), spec.std.end(), [](double v) { return v != 1.0; });
  const float scale = static_cast<float>(spec.scale);
  for (int y = 0; y < spec.height; ++y) {
    const uint8_t* row = img.ptr<uint8_t>(y);
    for (int x = 0; x < spec.width * c; ++x) {
      const int k = x % c;
      float v = static_cast<float>(row[x]) * scale;
      if (any_mean) v -= static_cast<float>(spec.mean[spec.mean.size() == 1 ? 0 : k]);
      if (any_std) v /= static_cast<float>(spec.std[spec.std.size() == 1 ? 0 : k]);
      *out++ = v;
    }
  }
}

Tensor preprocess_files(const std::vector<std::string>& paths, const Preprocessing& spec) {
  Tensor batch({static_cast<int64_t>(paths.size()), spec.height, spec.width, spec.channels()});
  for (std::size_t i = 0; i < paths.size(); ++i) {
    preprocess_image(read_image(paths[i]), spec, batch.row(static_cast<int64_t>(i)), false, paths[i]);
  }
  return batch;
}

}  // namespace siamese
