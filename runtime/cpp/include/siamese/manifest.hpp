// The bundle manifest (mirrors runtime/bundle/manifest.py): preprocessing, scoring, files and their sha256.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "siamese/preprocess.hpp"
#include "siamese/scoring.hpp"
#include "siamese/version.hpp"

namespace siamese {

constexpr int kSchemaVersion = SIAMESE_SCHEMA_VERSION;  // from runtime/bundle/manifest.schema.json
constexpr const char* kManifestName = "manifest.json";

struct FileEntry {
  std::string sha256;
  int64_t bytes = -1;
};

struct RawArray {  // one array of the reference as a raw little-endian file (runtime/bundle/reference.py write_raw)
  std::string file;
  std::string dtype;  // float32 | int64
  std::vector<int64_t> shape;
};

struct Manifest {
  std::string bundle_dir;
  std::string name;
  Preprocessing preprocessing;
  ScoreSpec score;
  int embedding_dim = 0;
  bool l2_normalized = false;
  std::string embedding_file = "embedding.onnx";
  std::string embedding_output = "embedding";  // the embedding graphs' output name
  std::string int8_file;                       // embedding.int8.onnx (QDQ) when exported with --int8, else empty
  int64_t batch_max = 32;                      // onnx.batch's MAX (MIN:OPT:MAX): the largest run of a dynamic graph
  std::string parity_file;                     // parity.json, when the exporter wrote one
  std::string head_kind;  // learned | euclidean
  std::string head_file;  // head.onnx for a learned head
  double epsilon = kDefaultEpsilon;
  std::string opencv_embedding_file;  // empty when the exporter could not write one (opencv_error says why)
  std::string opencv_head_file;
  std::string opencv_error;
  int opencv_batch = 1;
  std::map<std::string, RawArray> reference_raw;
  std::map<std::string, FileEntry> files;

  std::string path(const std::string& relative) const;  // bundle_dir/relative
};

// Parse manifest text; `where` names the file in error messages. Throws Error(Bundle).
Manifest parse_manifest(const std::string& json_text, const std::string& where);
// Read <bundle_dir>/manifest.json and (by default) check every listed file's sha256. Throws Error(Bundle).
Manifest load_manifest(const std::string& bundle_dir, bool verify = true);
// Throws Error(Bundle) naming the first file that is missing, outside the bundle, or whose sha256 differs.
void verify_files(const Manifest& manifest);
// The lowercase hex sha256 of a file (OpenSSL EVP). Throws Error(Bundle) when it cannot be read.
std::string sha256_file(const std::string& path);

}  // namespace siamese
