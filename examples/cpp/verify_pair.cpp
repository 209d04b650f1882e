// verify_pair BUNDLE REFERENCE IMAGE...: enroll REFERENCE, then say for each IMAGE whether it is the same identity.
#include <cstdio>
#include <filesystem>

#include <siamese/siamese.hpp>

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s BUNDLE REFERENCE IMAGE...\n", argv[0]);
    return 2;
  }
  try {
    siamese::Verifier verifier(argv[1]);  // checks the bundle's sha256s, picks the best backend built in
    std::printf("bundle %s on %s (%s)\n", verifier.manifest().name.c_str(), verifier.backend().name().c_str(),
                verifier.selection().c_str());
    siamese::Gallery gallery(verifier);
    const std::string who = std::filesystem::path(argv[2]).stem().string();
    gallery.enroll_files(who, {argv[2]});  // embedded once; each query runs the network once
    for (int i = 3; i < argc; ++i) {
      const siamese::Identification r = gallery.identify_file(argv[i]);
      const siamese::Candidate& best = r.candidates.front();
      std::printf("%s: %s (%s %.4g, threshold %.4g, %s)\n", argv[i], r.label().c_str(), r.spec.kind.c_str(), best.score,
                  r.spec.threshold, best.match ? "match" : "no match");
    }
  } catch (const siamese::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
