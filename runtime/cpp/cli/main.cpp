// siamese-cli: verify a pair, embed images, benchmark, check parity; exit codes as python -m runtime.verify:
// 0 ran, 1 parity failed, 2 bad input (one line on stderr naming the file), 3 backend cannot run here.
#include <cstdio>
#include <fstream>
#include <optional>
#include <iostream>
#include <string>

#include <opencv2/core/version.hpp>

#include "args.hpp"
#include "bench.hpp"
#include "siamese/siamese.hpp"

namespace {

const char* kUsage = R"(usage: siamese-cli COMMAND --bundle DIR [options]

commands:
  verify   --bundle DIR IMAGE_A IMAGE_B [--json]   score a pair, say what the score means and decide
  embed    --bundle DIR IMAGE... [--out FILE]      print embeddings (or write them as raw float32 to FILE)
  bench    --bundle DIR [--batch N] [--iterations N] [--warmup N] [--json]
  parity   --bundle DIR   the backend against the bundle's Keras reference, with runtime/parity_tolerances.json's
           checks for its precision; override them with --embedding-rel T --score-abs T (fp32), --min-cosine T
           --max-flip-rate T --max-flips-outside N (fp16, bf16, int8)
options for every command: --backend auto|opencv|onnxruntime|openvino|tensorrt (default auto), --threads N,
  --precision fp32|bf16|int8 (openvino; the others run fp32, TensorRT its plan's; default fp32)
verify: --threshold T decides at T instead of the manifest's (or parity.json's refit for this backend and precision)
  siamese-cli --version   the version and the backends built into this library

exit codes: 0 ran, 1 parity failed, 2 bad input (bundle, image, arguments), 3 the backend cannot run here
)";

const std::set<std::string> kValued{"--bundle", "--backend", "--threads", "--out", "--batch", "--iterations",
                                    "--warmup", "--embedding-rel", "--score-abs", "--min-cosine", "--max-flip-rate",
                                    "--max-flips-outside", "--precision", "--threshold"};
const std::set<std::string> kSwitches{"--json", "--help"};

siamese::Verifier open(const cli::Args& args) {
  return siamese::Verifier(args.required("--bundle"), args.get("--backend", "auto"), cli::backend_options(args));
}

int verify(const cli::Args& args) {
  if (args.positional.size() != 2) {
    throw siamese::Error(siamese::ErrorCode::InvalidArgument, "verify: expected two images (A B)");
  }
  siamese::Verifier v = open(args);
  if (args.options.count("--threshold")) v.set_threshold(args.number("--threshold", 0), "given on the command line");
  const siamese::Verification r = v.verify_files(args.positional[0], args.positional[1]);
  if (args.flags.count("--json")) {
    std::printf("{\"score\": %.9g, \"match\": %s, \"kind\": \"%s\", \"same_when\": \"%s\", \"threshold\": %.9g, "
                "\"backend\": \"%s\"}\n", r.score, r.match ? "true" : "false", r.spec.kind.c_str(),
                r.spec.same_when.c_str(), r.spec.threshold, v.backend().name().c_str());
  } else {
    std::printf("%s\nbackend: %s (%s)\n", r.describe().c_str(), v.backend().name().c_str(), v.selection().c_str());
  }
  return 0;
}

int embed(const cli::Args& args) {
  siamese::Verifier v = open(args);
  const siamese::Tensor e = v.embed_files(args.positional);
  const std::string out = args.get("--out");
  if (!out.empty()) {
    std::ofstream f(out, std::ios::binary);
    f.write(reinterpret_cast<const char*>(e.data.data()), static_cast<std::streamsize>(e.data.size() * sizeof(float)));
    if (!f) throw siamese::Error(siamese::ErrorCode::InvalidArgument, out + ": cannot write");
    std::printf("%s: %lld x %lld float32 (little-endian), backend %s\n", out.c_str(), static_cast<long long>(e.shape[0]),
                static_cast<long long>(e.shape[1]), v.backend().name().c_str());
    return 0;
  }
  for (int64_t i = 0; i < e.rows(); ++i) {
    std::printf("%s", args.positional[static_cast<std::size_t>(i)].c_str());
    for (int64_t k = 0; k < e.shape[1]; ++k) std::printf(" %.9g", e.row(i)[k]);
    std::printf("\n");
  }
  return 0;
}

// runtime.parity.compare's checks for the backend's precision: FP32 on the numbers, fp16/bf16/int8 on decisions
// (noise band, flips outside it, flip rate; the threshold refitted when the scores shift as a whole). The
// tolerances are runtime/parity_tolerances.json's (siamese/tolerances.hpp), each overridable on the command line.
int parity(const cli::Args& args) {
  siamese::Verifier v = open(args);
  siamese::Backend& b = v.backend();
  siamese::Tolerances tol = siamese::tolerances_for(b.precision());
  auto given = [&args](const char* name, std::optional<double>& value) {
    if (args.options.count(name)) value = args.number(name, 0);
  };
  given("--embedding-rel", tol.embedding_rel);
  given("--score-abs", tol.score_abs);
  given("--min-cosine", tol.min_cosine);
  given("--max-flip-rate", tol.max_flip_rate);
  given("--max-flips-outside", tol.max_flips_outside_band);
  const siamese::Parity p = siamese::measure_parity(b, siamese::load_reference(v.manifest()), v.manifest().score, tol);
  std::printf("bundle %s, backend %s (%s), %d images, %d pairs\n", v.manifest().name.c_str(), b.name().c_str(),
              b.precision().c_str(), p.images, p.pairs);
  for (const siamese::ParityCheck& c : p.checks) {
    std::printf("%-15s %s%-9.3g %12.6g  %s\n", c.metric.c_str(), c.higher_is_better ? ">=" : "<=", c.asked, c.observed,
                c.passed ? "PASSED" : "FAILED");
  }
  std::printf("embedding max abs %.3g, min cosine %.6f, score max abs %.3g, flips %d/%d", p.embedding_max_abs,
              p.min_cosine, p.score_max_abs, p.decision_flips, p.pairs);
  if (p.decision_flips) std::printf(", %d outside the noise band %.3g", p.flips_outside_band, p.noise_band);
  if (p.threshold) {
    std::printf("; threshold refitted to %.4g (%d flips at the manifest's)", *p.threshold, p.flips_at_manifest_threshold);
  }
  std::printf("\n%s\n", p.passed() ? "PASSED" : "FAILED");
  return p.passed() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string command = argc > 1 ? argv[1] : "--help";
  if (command == "--version") {
    std::printf("siamese-cli %s (OpenCV %s)\nbackends: %s\n", SIAMESE_RUNTIME_VERSION, CV_VERSION, SIAMESE_RUNTIME_BACKENDS);
    return 0;
  }
  if (command == "--help" || command == "-h") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  try {
    const cli::Args args(argc, argv, 2, kValued, kSwitches);
    if (args.flags.count("--help")) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (command == "verify") return verify(args);
    if (command == "embed") return embed(args);
    if (command == "bench") return cli::bench(args);
    if (command == "parity") return parity(args);
    throw siamese::Error(siamese::ErrorCode::InvalidArgument, "unknown command '" + command + "' (verify, embed, bench, parity)");
  } catch (const siamese::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return e.code() == siamese::ErrorCode::Backend ? 3 : 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}
