// siamese-cli bench: embedding latency (p50/p99 per batch) and throughput on the bundle's reference inputs.
#include "bench.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

#include "siamese/siamese.hpp"

namespace cli {

namespace {

// A batch of `n` preprocessed images: the reference inputs, cycled (random values when the bundle has none).
siamese::Tensor bench_batch(const siamese::Manifest& m, int n) {
  const siamese::Preprocessing& p = m.preprocessing;
  siamese::Tensor batch({n, p.height, p.width, p.channels()});
  if (m.reference_raw.count("inputs")) {
    const siamese::Reference ref = siamese::load_reference(m);
    for (int i = 0; i < n; ++i) {
      const float* src = ref.inputs.row(i % ref.inputs.rows());
      std::copy(src, src + batch.row_size(), batch.row(i));
    }
  } else {
    std::mt19937 rng(0);
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    for (float& v : batch.data) v = u(rng);
  }
  return batch;
}

}  // namespace

int bench(const Args& args) {
  const siamese::BackendOptions options = backend_options(args);
  const int batch_size = static_cast<int>(args.number("--batch", 1));
  const int iterations = static_cast<int>(args.number("--iterations", 200));
  const int warmup = static_cast<int>(args.number("--warmup", 10));
  if (batch_size < 1 || iterations < 1 || warmup < 0) {
    throw siamese::Error(siamese::ErrorCode::InvalidArgument, "--batch and --iterations must be >= 1, --warmup >= 0");
  }
  siamese::Verifier v(args.required("--bundle"), args.get("--backend", "auto"), options);
  const siamese::Tensor batch = bench_batch(v.manifest(), batch_size);
  for (int i = 0; i < warmup; ++i) v.backend().embed(batch);
  std::vector<double> ms;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    v.backend().embed(batch);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double p50 = siamese::quantile(ms, 0.50), p99 = siamese::quantile(ms, 0.99);
  const double throughput = iterations * static_cast<double>(batch_size) / total;
  std::printf("bundle %s, backend %s (%s, %s), batch %d, %d iterations after %d warm-up\n", v.manifest().name.c_str(),
              v.backend().name().c_str(), v.backend().precision().c_str(), v.backend().device().c_str(), batch_size,
              iterations, warmup);
  std::printf("latency per batch: p50 %.3f ms, p99 %.3f ms; throughput %.1f images/s\n", p50, p99, throughput);
  if (args.flags.count("--json")) {
    std::printf("{\"backend\": \"%s\", \"batch\": %d, \"p50_ms\": %.6f, \"p99_ms\": %.6f, \"images_per_s\": %.3f}\n",
                v.backend().name().c_str(), batch_size, p50, p99, throughput);
  }
  return 0;
}

}  // namespace cli
