// Enrolled identities and identification against all of them (mirrors runtime/gallery.py, in memory).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "siamese/verifier.hpp"

namespace siamese {

struct Candidate {
  std::string identity;
  float score = 0.0f;
  bool match = false;  // this score alone passes the threshold
  int images = 0;
};

struct Identification {
  std::optional<std::string> identity;  // the best candidate when it passes the threshold
  std::vector<Candidate> candidates;    // best first
  ScoreSpec spec;
  std::string aggregate;
  std::string label() const { return identity ? *identity : "unknown"; }
};

// Keeps a reference to the verifier, which must outlive the gallery.
class Gallery {
 public:
  // aggregate: "template" (query vs the mean embedding; the default for distance heads), "mean" (mean of the
  // per-image scores; the default for learned heads, whose threshold was calibrated on single images) or "max".
  explicit Gallery(Verifier& verifier, const std::string& aggregate = "",
                   std::optional<double> threshold = std::nullopt);

  void enroll(const std::string& identity, const Tensor& embeddings);  // (N, dim), appended to earlier ones
  void enroll_files(const std::string& identity, const std::vector<std::string>& paths);
  bool remove(const std::string& identity);
  std::size_t size() const { return rows_.size(); }
  const std::string& aggregate() const { return aggregate_; }

  Identification identify(const float* embedding, int top_k = 5);
  Identification identify_file(const std::string& path, int top_k = 5);

 private:
  float score_identity(const float* query, const std::vector<float>& rows);
  Verifier& verifier_;
  std::string aggregate_;
  ScoreSpec spec_;
  std::map<std::string, std::vector<float>> rows_;  // identity -> its embeddings, row after row
};

}  // namespace siamese
