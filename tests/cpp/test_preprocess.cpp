// Preprocessing in C++ against runtime/preprocess.py on the same files (tensors written by make_test_data.py).
// usage: test_preprocess PREPROCESS_DIR
//
// The bound, measured with Python's pip OpenCV 5.0 against Debian 12's OpenCV 4.6: decoding (PNG, JPEG, BMP),
// color conversion and nearest/bilinear/area resizing are bit-exact, so those cases must match exactly. OpenCV's
// bicubic resize rounds a few percent of the pixels one uint8 level apart between the two versions; those cases may
// differ by one level after scaling (scale / min|std|) in at most kBicubicShare of the values.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>
#include <opencv2/core/version.hpp>

#include "check.hpp"
#include "siamese/siamese.hpp"

namespace {

constexpr double kBicubicShare = 0.10;  // measured: up to 4.1% of the values (7% of the resized area)

siamese::Preprocessing spec_from(const nlohmann::json& j) {
  siamese::Preprocessing s;
  s.height = j.at("height");
  s.width = j.at("width");
  s.color = j.at("color");
  s.resize = j.at("resize");
  s.interpolation = j.at("interpolation");
  s.letterbox_fill = j.at("letterbox_fill");
  s.scale = j.at("scale");
  s.mean = j.at("mean").get<std::vector<double>>();
  s.std = j.at("std").get<std::vector<double>>();
  s.validate("index.json");
  return s;
}

std::vector<float> read_f32(const std::string& path) {
  const std::string bytes = check::read_bytes(path);
  std::vector<float> v(bytes.size() / sizeof(float));
  std::memcpy(v.data(), bytes.data(), v.size() * sizeof(float));
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  if (!check::args_ok(argc, argv, 1, "PREPROCESS_DIR")) return 2;
  const std::string dir = argv[1];
  std::ifstream in(dir + "/index.json");
  const nlohmann::json index = nlohmann::json::parse(in);
  std::printf("Python's OpenCV %s, this library's OpenCV %s\n", index.value("opencv_python", "?").c_str(), CV_VERSION);
  double worst = 0;
  for (const auto& c : index.at("cases")) {
    const siamese::Preprocessing spec = spec_from(c.at("spec"));
    const std::vector<float> want = read_f32(dir + "/" + c.at("tensor").get<std::string>());
    std::vector<float> got(static_cast<std::size_t>(spec.height) * spec.width * spec.channels());
    const std::string image = c.at("image");
    siamese::preprocess_image(siamese::read_image(image), spec, got.data(), false, image);
    double diff = want.size() == got.size() ? 0.0 : INFINITY;
    std::size_t differing = 0;
    for (std::size_t i = 0; i < std::min(want.size(), got.size()); ++i) {
      const double d = std::abs(static_cast<double>(want[i]) - got[i]);
      diff = std::max(diff, d);
      differing += d > 0;
    }
    worst = std::max(worst, diff);
    const bool bicubic = spec.interpolation == "bicubic";
    double min_std = INFINITY;
    for (double v : spec.std) min_std = std::min(min_std, std::abs(v));
    // one uint8 level (+ float32 rounding of values up to a few units: 1e-6), or exact
    const double bound = bicubic ? spec.scale / min_std + 1e-6 : 0.0;
    const double share = static_cast<double>(differing) / static_cast<double>(want.size());
    std::ostringstream what;
    what << c.at("tensor").get<std::string>() << " (" << spec.resize << ", " << spec.interpolation << ", " << spec.color
         << "): max |python - c++| " << diff << " <= " << bound << ", " << differing << "/" << want.size()
         << " values differ (at most " << (bicubic ? kBicubicShare : 0.0) << " of them)";
    check::expect(diff <= bound && share <= (bicubic ? kBicubicShare : 0.0), what.str());
  }
  std::printf("max abs difference over all cases: %g\n", worst);
  return check::result();
}
