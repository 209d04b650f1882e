// Bad input gives an error code and a message naming the file or value, never a crash.
// usage: test_bad_input BUNDLE_DIR IMAGE_PNG SCRATCH_DIR
#include <filesystem>
#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>

#include "check.hpp"
#include "siamese/siamese.hpp"

namespace fs = std::filesystem;
using siamese::ErrorCode;

namespace {

const char* code_name(ErrorCode c) {
  switch (c) {
    case ErrorCode::InvalidArgument: return "InvalidArgument";
    case ErrorCode::Bundle: return "Bundle";
    case ErrorCode::Image: return "Image";
    case ErrorCode::Backend: return "Backend";
    case ErrorCode::Internal: return "Internal";
  }
  return "?";
}

// `body` must throw siamese::Error with `code` and a message containing `needle`.
void expect_error(const std::string& label, ErrorCode code, const std::string& needle, const std::function<void()>& body) {
  try {
    body();
    check::expect(false, label + ": no error raised");
  } catch (const siamese::Error& e) {
    const std::string msg = e.what();
    check::expect(e.code() == code && msg.find(needle) != std::string::npos,
                  label + ": " + code_name(e.code()) + " '" + msg + "' (expected " + code_name(code) + " naming '" +
                      needle + "')");
  } catch (const std::exception& e) {
    check::expect(false, label + ": a non-siamese exception escaped: " + e.what());
  }
}

void write(const fs::path& p, const std::string& bytes) { std::ofstream(p, std::ios::binary) << bytes; }

std::string read(const fs::path& p) { return check::read_bytes(p.string()); }

// A fresh copy of the bundle whose manifest is edited by `edit`.
fs::path bundle_copy(const fs::path& bundle, const fs::path& scratch, const std::string& name,
                     const std::function<void(nlohmann::json&)>& edit = nullptr) {
  const fs::path dir = scratch / name;
  fs::remove_all(dir);
  fs::copy(bundle, dir, fs::copy_options::recursive);
  if (edit) {
    nlohmann::json m = nlohmann::json::parse(read(dir / "manifest.json"));
    edit(m);
    write(dir / "manifest.json", m.dump());
  }
  return dir;
}

}  // namespace

int main(int argc, char** argv) {
  if (!check::args_ok(argc, argv, 3, "BUNDLE_DIR IMAGE_PNG SCRATCH_DIR")) return 2;
  const fs::path bundle = argv[1], image = argv[2], scratch = argv[3];
  fs::create_directories(scratch);

  // bundles and manifests
  expect_error("no such bundle", ErrorCode::Bundle, "no/such/bundle", [] { siamese::load_manifest("no/such/bundle"); });
  const fs::path no_manifest = bundle_copy(bundle, scratch, "no_manifest");
  fs::remove(no_manifest / "manifest.json");
  expect_error("manifest missing", ErrorCode::Bundle, "manifest.json: missing",
               [&] { siamese::load_manifest(no_manifest.string()); });
  const fs::path not_json = bundle_copy(bundle, scratch, "not_json");
  write(not_json / "manifest.json", "{\"schema_version\": 1, ");
  expect_error("manifest not JSON", ErrorCode::Bundle, "not valid JSON", [&] { siamese::load_manifest(not_json.string()); });
  auto edited = [&](const std::string& label, const std::function<void(nlohmann::json&)>& edit, const std::string& needle) {
    const fs::path dir = bundle_copy(bundle, scratch, "edited", edit);
    expect_error(label, ErrorCode::Bundle, needle, [&] { siamese::load_manifest(dir.string()); });
  };
  edited("schema from the future", [](auto& m) { m["schema_version"] = 99; }, "schema_version 99");
  edited("missing score", [](auto& m) { m.erase("score"); }, "missing field 'score'");
  edited("dim of the wrong type", [](auto& m) { m["embedding"]["dim"] = "128"; }, "'embedding.dim'");
  edited("unknown head kind", [](auto& m) { m["head"]["kind"] = "cosine"; }, "head kind 'cosine'");
  edited("unknown color", [](auto& m) { m["preprocessing"]["color"] = "cmyk"; }, "color 'cmyk'");
  edited("unknown preprocessing key", [](auto& m) { m["preprocessing"]["gamma"] = 2.2; }, "unknown key 'gamma'");
  edited("std of zero", [](auto& m) { m["preprocessing"]["std"] = {0.0}; }, "std must not contain 0");
  edited("same_when sideways", [](auto& m) { m["score"]["same_when"] = "sideways"; }, "same_when 'sideways'");
  edited("file outside the bundle", [](auto& m) { m["files"]["../escape.onnx"] = {{"sha256", "00"}}; }, "outside the bundle");
  edited("listed file missing", [](auto& m) { m["files"]["gone.onnx"] = {{"sha256", "00"}}; }, "gone.onnx: listed in the manifest but missing");

  const fs::path tampered = bundle_copy(bundle, scratch, "tampered");
  const std::string graph = siamese::load_manifest(bundle.string(), false).opencv_embedding_file;
  std::string bytes = read(tampered / graph);
  bytes[bytes.size() / 2] ^= 0x5a;
  write(tampered / graph, bytes);
  expect_error("sha256 mismatch", ErrorCode::Bundle, graph + ": sha256", [&] { siamese::load_manifest(tampered.string()); });
  expect_error("sha256 mismatch through the verifier", ErrorCode::Bundle, "does not match the manifest",
               [&] { siamese::Verifier v(tampered.string(), "opencv"); });

  const fs::path truncated = bundle_copy(bundle, scratch, "truncated");
  const std::string inputs = read(truncated / "reference/inputs.f32");
  write(truncated / "reference/inputs.f32", inputs.substr(0, inputs.size() - 3));
  expect_error("truncated reference (unverified load)", ErrorCode::Bundle, "inputs.f32",
               [&] { siamese::load_reference(siamese::load_manifest(truncated.string(), false)); });

  const fs::path no_opencv = bundle_copy(bundle, scratch, "no_opencv", [](auto& m) { m.erase("opencv"); });
  expect_error("no OpenCV graph", ErrorCode::Backend, "no OpenCV DNN graph",
               [&] { siamese::Verifier v(no_opencv.string(), "opencv"); });
  expect_error("unknown backend", ErrorCode::InvalidArgument, "backend 'cuda-magic'",
               [&] { siamese::Verifier v(bundle.string(), "cuda-magic"); });

  // images
  siamese::Verifier v(bundle.string(), "opencv");
  expect_error("missing image", ErrorCode::Image, "no_such.png: no such file", [&] { v.embed_files({"no_such.png"}); });
  expect_error("directory as image", ErrorCode::Image, "is a directory", [&] { v.embed_files({scratch.string()}); });
  write(scratch / "empty.png", "");
  expect_error("empty image file", ErrorCode::Image, "empty.png: empty file", [&] { v.embed_files({(scratch / "empty.png").string()}); });
  write(scratch / "garbage.png", std::string(4096, '\x17'));
  expect_error("corrupt image", ErrorCode::Image, "garbage.png: not a readable image",
               [&] { v.embed_files({(scratch / "garbage.png").string()}); });
  const std::string png = read(image);
  write(scratch / "truncated.png", png.substr(0, 40));
  expect_error("truncated image", ErrorCode::Image, "truncated.png: not a readable image",
               [&] { v.embed_files({(scratch / "truncated.png").string()}); });
  expect_error("one bad image among good ones", ErrorCode::Image, "no_such.png",
               [&] { v.verify_files(image.string(), "no_such.png"); });

  // caller mistakes
  expect_error("no images", ErrorCode::InvalidArgument, "no image files", [&] { v.embed_files({}); });
  expect_error("wrong batch shape", ErrorCode::InvalidArgument, "NHWC", [&] { v.backend().embed(siamese::Tensor({1, 3, 3, 3})); });
  expect_error("mismatched embeddings", ErrorCode::InvalidArgument, "same shape",
               [&] { v.score(siamese::Tensor({2, v.manifest().embedding_dim}), siamese::Tensor({3, v.manifest().embedding_dim})); });
  siamese::Gallery g(v);
  expect_error("empty identity", ErrorCode::InvalidArgument, "empty identity", [&] { g.enroll("", v.embed_files({image.string()})); });
  expect_error("bad aggregate", ErrorCode::InvalidArgument, "aggregate 'median'", [&] { siamese::Gallery bad(v, "median"); });
  expect_error("top_k 0", ErrorCode::InvalidArgument, "top_k 0", [&] { g.identify_file(image.string(), 0); });
  return check::result();
}
