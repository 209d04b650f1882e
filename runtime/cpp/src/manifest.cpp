// manifest.json -> Manifest, with the checks runtime/bundle/manifest.py makes and messages that name the field.
#include "siamese/manifest.hpp"

#include <algorithm>
#include <filesystem>
#include <iterator>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "siamese/error.hpp"

namespace siamese {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

[[noreturn]] void fail(const std::string& where, const std::string& what) {
  throw Error(ErrorCode::Bundle, where + ": " + what);
}

const json& field(const json& obj, const char* key, const std::string& where, const std::string& path) {
  if (!obj.is_object() || !obj.contains(key)) fail(where, "missing field '" + path + key + "'");
  return obj.at(key);
}

template <typename T>
T value(const json& obj, const char* key, const std::string& where, const std::string& path) {
  const json& v = field(obj, key, where, path);
  try {
    return v.get<T>();
  } catch (const json::exception&) {
    fail(where, "field '" + path + key + "' is " + v.dump() + ", of the wrong type");
  }
}

template <typename T>
T value_or(const json& obj, const char* key, T fallback, const std::string& where, const std::string& path) {
  if (!obj.is_object() || !obj.contains(key) || obj.at(key).is_null()) return fallback;
  return value<T>(obj, key, where, path);
}

Preprocessing parse_preprocessing(const json& p, const std::string& where) {
  const std::string at = "preprocessing.";
  // as runtime/preprocess.py's Preprocessing.from_dict: a setting this runtime does not know would be ignored,
  // and the network would see other inputs than in training
  static const char* known[] = {"height", "width", "color", "resize", "interpolation", "letterbox_fill",
                                "scale", "mean", "std"};
  if (!p.is_object()) fail(where, "preprocessing is not an object");
  for (const auto& [key, unused] : p.items()) {
    (void)unused;
    if (std::find(std::begin(known), std::end(known), key) == std::end(known)) {
      fail(where, "preprocessing: unknown key '" + key + "'; this runtime reads height, width, color, resize, "
                  "interpolation, letterbox_fill, scale, mean, std (re-export, or update the runtime)");
    }
  }
  Preprocessing s;
  s.height = value<int>(p, "height", where, at);
  s.width = value<int>(p, "width", where, at);
  s.color = value_or<std::string>(p, "color", s.color, where, at);
  s.resize = value_or<std::string>(p, "resize", s.resize, where, at);
  s.interpolation = value_or<std::string>(p, "interpolation", s.interpolation, where, at);
  s.letterbox_fill = value_or<int>(p, "letterbox_fill", s.letterbox_fill, where, at);
  s.scale = value_or<double>(p, "scale", s.scale, where, at);
  s.mean = value_or<std::vector<double>>(p, "mean", s.mean, where, at);
  s.std = value_or<std::vector<double>>(p, "std", s.std, where, at);
  s.validate(where);
  return s;
}

ScoreSpec parse_score(const json& j, const std::string& where) {
  ScoreSpec s;
  s.kind = value<std::string>(j, "kind", where, "score.");
  s.same_when = value<std::string>(j, "same_when", where, "score.");
  s.threshold = value<double>(j, "threshold", where, "score.");
  s.threshold_source = value_or<std::string>(j, "threshold_source", "default", where, "score.");
  if (s.kind != "probability" && s.kind != "distance") {
    fail(where, "score kind '" + s.kind + "', expected probability or distance");
  }
  if (s.same_when != "high" && s.same_when != "low") {
    fail(where, "score same_when '" + s.same_when + "', expected high or low");
  }
  return s;
}

void parse_reference(const json& ref, Manifest& m, const std::string& where) {
  if (!ref.is_object() || !ref.contains("raw")) return;  // bundles exported before the raw reference
  for (const auto& [name, entry] : ref.at("raw").items()) {
    const std::string at = "reference.raw." + name + ".";
    RawArray a;
    a.file = value<std::string>(entry, "file", where, at);
    a.dtype = value<std::string>(entry, "dtype", where, at);
    a.shape = value<std::vector<int64_t>>(entry, "shape", where, at);
    if (a.dtype != "float32" && a.dtype != "int64") fail(where, at + "dtype '" + a.dtype + "', expected float32 or int64");
    m.reference_raw[name] = a;
  }
}

}  // namespace

std::string Manifest::path(const std::string& relative) const { return (fs::path(bundle_dir) / relative).string(); }

Manifest parse_manifest(const std::string& text, const std::string& where) {
  json d;
  try {
    d = json::parse(text);
  } catch (const json::parse_error& e) {
    fail(where, std::string("not valid JSON (") + e.what() + ")");
  }
  if (!d.is_object()) fail(where, "not a JSON object");
  const int version = value<int>(d, "schema_version", where, "");
  if (version != kSchemaVersion) {
    fail(where, "schema_version " + std::to_string(version) + ", this runtime reads " +
                    std::to_string(kSchemaVersion) + "; re-export the bundle");
  }
  Manifest m;
  m.name = value<std::string>(d, "name", where, "");
  m.preprocessing = parse_preprocessing(field(d, "preprocessing", where, ""), where);
  m.score = parse_score(field(d, "score", where, ""), where);
  const json& emb = field(d, "embedding", where, "");
  m.embedding_dim = value<int>(emb, "dim", where, "embedding.");
  if (m.embedding_dim <= 0) fail(where, "embedding.dim " + std::to_string(m.embedding_dim) + ", expected > 0");
  m.l2_normalized = value_or<bool>(emb, "l2_normalized", false, where, "embedding.");
  m.embedding_file = value_or<std::string>(emb, "file", m.embedding_file, where, "embedding.");
  m.embedding_output = value_or<std::string>(emb, "output", m.embedding_output, where, "embedding.");
  m.int8_file = value_or<std::string>(emb, "int8_file", "", where, "embedding.");
  if (d.contains("onnx") && d.at("onnx").is_object()) {
    const std::string batch = value_or<std::string>(d.at("onnx"), "batch", "", where, "onnx.");
    const std::size_t colon = batch.rfind(':');
    try {
      if (!batch.empty()) m.batch_max = std::stoll(colon == std::string::npos ? batch : batch.substr(colon + 1));
    } catch (const std::exception&) {
      fail(where, "onnx.batch '" + batch + "', expected MIN:OPT:MAX");
    }
    if (m.batch_max < 1) fail(where, "onnx.batch '" + batch + "': its maximum must be >= 1");
  }
  m.parity_file = value_or<std::string>(d, "parity_file", "", where, "");
  const json& head = field(d, "head", where, "");
  m.head_kind = value<std::string>(head, "kind", where, "head.");
  m.head_file = value_or<std::string>(head, "file", "", where, "head.");
  m.epsilon = value_or<double>(head, "epsilon", kDefaultEpsilon, where, "head.");
  if (m.head_kind != "learned" && m.head_kind != "euclidean") {
    fail(where, "head kind '" + m.head_kind + "', expected learned or euclidean");
  }
  if (m.head_kind == "learned" && m.head_file.empty()) fail(where, "a learned head needs head.file");
  if (d.contains("opencv") && d.at("opencv").is_object()) {
    const json& cv = d.at("opencv");
    m.opencv_embedding_file = value_or<std::string>(cv, "embedding_file", "", where, "opencv.");
    m.opencv_head_file = value_or<std::string>(cv, "head_file", "", where, "opencv.");
    m.opencv_error = value_or<std::string>(cv, "error", "", where, "opencv.");
    m.opencv_batch = value_or<int>(cv, "batch", 1, where, "opencv.");
  }
  if (d.contains("reference")) parse_reference(d.at("reference"), m, where);
  for (const auto& [name, entry] : field(d, "files", where, "").items()) {
    FileEntry f;
    f.sha256 = value_or<std::string>(entry, "sha256", "", where, "files." + name + ".");
    f.bytes = value_or<int64_t>(entry, "bytes", -1, where, "files." + name + ".");
    m.files[name] = f;
  }
  return m;
}

void verify_files(const Manifest& m) {
  const fs::path root(m.bundle_dir);
  for (const auto& [name, entry] : m.files) {
    const fs::path rel(name);
    bool escapes = rel.is_absolute();
    for (const auto& part : rel) escapes = escapes || part == "..";
    if (escapes) fail((root / kManifestName).string(), "file entry '" + name + "' points outside the bundle");
    const fs::path p = root / rel;
    if (!fs::is_regular_file(p)) fail(p.string(), "listed in the manifest but missing");
    const std::string actual = sha256_file(p.string());
    if (actual != entry.sha256) {
      fail(p.string(), "sha256 " + actual.substr(0, 12) + "... does not match the manifest (" +
                           entry.sha256.substr(0, 12) +
                           "...); the file was changed or truncated after export: re-export the bundle");
    }
  }
}

Manifest load_manifest(const std::string& bundle_dir, bool verify) {
  const fs::path root(bundle_dir);
  const fs::path path = root / kManifestName;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    fail(bundle_dir, std::string("not a bundle folder (expected a folder with ") + kManifestName + ")");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path.string(), "missing; is " + bundle_dir + " a bundle written by python -m export.build?");
  std::stringstream text;
  text << in.rdbuf();
  Manifest m = parse_manifest(text.str(), path.string());
  m.bundle_dir = bundle_dir;
  if (verify) verify_files(m);
  return m;
}

}  // namespace siamese
