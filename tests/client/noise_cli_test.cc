// The noise workflow through the real binaries: calibctl make-samples --noise → detector put →
// build bias, read_noise, gain, dark_current, noise_model, bad_pixels (certified) → synth-dark,
// against a real calibd. The oracle is the truth the samples were drawn from
// (client/noise_samples.h), not a round trip:
//
// A synthesized dark from the noise model for (t, g) is F̂/g + t·D̂ + Ĉ; the truth is
// (F + g·t·D + g·C)/g. Its error has two parts: the fit's, which the server states as the
// variance aᵀΣa (a = (1/g, t, 1), Σ the pixel's covariance of F̂, D̂, Ĉ), and the master bias's
// error b, common to every sub-stack, which the fit cannot see and which goes into F̂ (the
// constant column): var(b)/g² with var(b) ≤ (π/2)·(rn² + σ_os²)/n_bias for a median-like
// combine of n_bias biases, σ_os² = (π/2)·rn_os²/n_os the per-row overscan estimate's variance.
// With σ² = stated + var(b)/g², the pulls (synth − truth)/σ are standard normal if the server
// is right: ≥ 99 % within 3σ (expected 99.73 %; 3072 pixels, binomial sd 0.09 %) and
// 68.3 % ± 0.8 % within 1σ (asserted in [0.60, 0.76]: an error stated 2× too large or too small
// fails). The dark_current fallback (t·D̂, variance t²·σ_D²) has no bias term (a common offset
// goes into the intercept). Errors of the SynthesizeDark RPC are checked with exact codes
// through the generated stub, and calibctl's exit codes for the same.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "calibd/v1/noise.grpc.pb.h"
#include "client/noise_samples.h"
#include "client/samples.h"
#include "core/fits/fits.h"
#include "core/image/dq.h"
#include "core/noise/noise.h"
#include "core/noise/noise_product.h"
#include "core/status/status_matchers.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "tests/testing/calibctl_runner.h"
#include "tests/testing/calibd_process.h"
#include "tests/testing/temp_dir.h"

namespace calibd::testing {
namespace {

using ::testing::HasSubstr;

class NoiseCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    absl::StatusOr<std::unique_ptr<CalibdProcess>> s = CalibdProcess::Start();
    ASSERT_OK(s.status());
    server_ = s->release();
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
  }

  // calibctl --server ADDRESS args...
  static CliRun Calibctl(const std::vector<std::string>& args) {
    std::vector<std::string> all = {"--server", server_->address()};
    all.insert(all.end(), args.begin(), args.end());
    return RunCalibctl(*dir_, all);
  }
  static void MustRun(const std::vector<std::string>& args) {
    CliRun r = Calibctl(args);
    ASSERT_EQ(r.exit_code, 0) << absl::StrJoin(args, " ") << "\n" << r.out << r.err;
  }

  // make-samples --noise for `detector` into DIR/<name>, the spec stored, a bias built and
  // certified.
  static client::NoiseSampleSet Samples(const std::string& name, const std::string& detector) {
    const std::string d = dir_->File(name);
    CliRun r = Calibctl({"make-samples", "--noise", d, "--detector", detector, "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    client::NoiseSampleSet set;
    set.spec_path = d + "/SPEC.json";
    set.truth_path = d + "/TRUTH.fits";
    for (const auto& e : std::filesystem::directory_iterator(d + "/bias")) {
      set.bias.push_back(e.path().string());
    }
    for (const char* sub : {"ptc", "dark", "emccd"}) {
      std::vector<std::string>& v = std::string(sub) == "ptc"    ? set.ptc
                                    : std::string(sub) == "dark" ? set.dark
                                                                 : set.emccd;
      for (const auto& e : std::filesystem::directory_iterator(d + "/" + sub)) {
        v.push_back(e.path().string());
      }
      std::sort(v.begin(), v.end());
    }
    MustRun({"detector", "put", set.spec_path});
    std::vector<std::string> bias = {"build", "--detector", detector, "--kind",
                                     "bias",  "--certify-from", "2026-03-01"};
    bias.insert(bias.end(), set.bias.begin(), set.bias.end());
    MustRun(bias);
    return set;
  }

  static TempDir* dir_;
  static CalibdProcess* server_;
};
TempDir* NoiseCliTest::dir_ = nullptr;
CalibdProcess* NoiseCliTest::server_ = nullptr;

struct Pulls {
  int64_t n = 0, within1 = 0, within3 = 0;
  double Fraction1() const { return double(within1) / double(n); }
  double Fraction3() const { return double(within3) / double(n); }
};

// Adds (value − truth)/sigma of one pixel.
void AddPull(Pulls& p, double value, double truth, double sigma) {
  const double z = std::abs(value - truth) / sigma;
  ++p.n;
  p.within1 += z <= 1;
  p.within3 += z <= 3;
}

TEST_F(NoiseCliTest, EveryProductBuildsAndTheSynthesizedDarkMatchesTheTruth) {
  const std::string det = "demo/emccd0";
  client::NoiseSampleSet set = Samples("emccd", det);
  ASSERT_EQ(set.emccd.size(), 20u);
  const client::NoiseSampleOptions o;  // the defaults make-samples used

  auto build = [&](const std::string& kind, std::vector<std::string> files,
                   std::vector<std::string> extra = {}) {
    std::vector<std::string> a = {"build", "--detector", det, "--kind", kind, "--certify-from",
                                  "2026-03-01"};
    a.insert(a.end(), extra.begin(), extra.end());
    a.insert(a.end(), files.begin(), files.end());
    CliRun r = Calibctl(a);
    EXPECT_EQ(r.exit_code, 0) << kind << ": " << r.out << r.err;
    EXPECT_THAT(r.out, HasSubstr(absl::StrCat("built ", det, " ", kind, " version 1")));
    EXPECT_THAT(r.out, HasSubstr("certified for [2026-03-01T00:00:00Z, open)"));
    return r.out;
  };
  build("read_noise", set.bias);
  std::vector<std::string> ptc = set.ptc;
  ptc.push_back(set.bias[0]);
  ptc.push_back(set.bias[1]);
  const std::string gain_out = build("gain", ptc);
  build("dark_current", set.dark, {"--hot-sigma", "5"});
  build("noise_model", set.emccd);
  build("bad_pixels", {}, {"--stored", "dark_current=1", "--stored", "read_noise=1"});

  // The gain: one number with its stated error (photon transfer over 5 levels).
  const std::string gp = dir_->File("gain.fits");
  MustRun({"get", "--detector", det, "--kind", "gain", "--version", "1", "-o", gp});
  ASSERT_OK_AND_ASSIGN(noise::NoiseProduct g, noise::ReadNoiseProduct(gp));
  ASSERT_OK_AND_ASSIGN(double gain, g.header.GetDouble("GAIN"));
  ASSERT_OK_AND_ASSIGN(double gain_err, g.header.GetDouble("GAINERR"));
  EXPECT_LT(std::abs(gain - o.gain), 3 * gain_err) << gain << " ± " << gain_err;

  // get of a multi-map product: one FITS file, an HDU per map with its _ERR, and a DQ HDU.
  const std::string nmp = dir_->File("nm.fits");
  MustRun({"get", "--detector", det, "--kind", "noise_model", "--version", "1", "-o", nmp});
  ASSERT_OK_AND_ASSIGN(noise::NoiseProduct nm, noise::ReadNoiseProduct(nmp));
  for (const char* m : {"FPN", "FPN_ERR", "DARK_CURRENT", "DARK_CURRENT_ERR", "CIC", "CIC_ERR",
                        "COV_F_D", "COV_F_C", "COV_D_C", "ADJ_R2", "NUSABLE"}) {
    EXPECT_NE(nm.Find(m), nullptr) << m;
  }
  EXPECT_EQ(nm.dq.width(), o.data_width);

  // The bad-pixel map holds the planted hot pixels (the dark fit's k = 5 robust σ).
  const std::string bpp = dir_->File("bp.fits");
  MustRun({"get", "--detector", det, "--kind", "bad_pixels", "--version", "1", "-o", bpp});
  ASSERT_OK_AND_ASSIGN(noise::NoiseProduct bp, noise::ReadNoiseProduct(bpp));
  int planted = 0, found = 0;
  for (int y = 0; y < o.height; ++y) {
    for (int x = 0; x < o.data_width; ++x) {
      if (!client::NoiseTruthAt(o, x, y).hot) continue;
      ++planted;
      found += (bp.dq.at(x, y) & kDqHot) != 0;
    }
  }
  ASSERT_GT(planted, 5);
  EXPECT_EQ(found, planted);
  std::printf("hot pixels: %d planted, %d in the bad_pixels map; gain %.4f +- %.4f (truth %g)\n",
              planted, found, gain, gain_err, o.gain);

  // synth-dark at a (t, g) outside the training set.
  const double t = 45, em = 300;
  const std::string sp = dir_->File("synth.fits");
  CliRun r = Calibctl({"synth-dark", "--detector", det, "--exptime", "45", "--em-gain", "300",
                       "-o", sp});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("from demo/emccd0 noise_model version 1 (certified)"));
  ASSERT_OK_AND_ASSIGN(CalibratedFrame dark, fits::ReadCalibratedFrame(sp));
  EXPECT_EQ(dark.unit, "electron");
  ASSERT_TRUE(dark.has_variance());
  ASSERT_TRUE(dark.has_dq());
  EXPECT_TRUE(*dark.header.GetBool("SYNTHDRK"));
  EXPECT_EQ(*dark.header.GetString("SYNMODEL"), "noise_model");
  EXPECT_EQ(*dark.header.GetDouble("EXPTIME"), t);
  EXPECT_EQ(*dark.header.GetDouble("EMGAIN"), em);
  EXPECT_EQ(*dark.header.GetInt("SYNMODV"), 1);
  // The master bias's error (see the file comment), in e⁻².
  const double os_var = M_PI / 2 * o.read_noise_min * o.read_noise_min / o.overscan_width;
  auto bias_var = [&](double rn) { return M_PI / 2 * (rn * rn + os_var) / o.n_bias; };
  auto check = [&](const CalibratedFrame& f, double dscale, const char* what) {
    Pulls p;
    for (int y = 0; y < o.height; ++y) {
      for (int x = 0; x < o.data_width; ++x) {
        if (f.dq.at(x, y) != 0) continue;
        const client::NoiseTruth tr = client::NoiseTruthAt(o, x, y);
        const double truth = tr.fpn / em + t * dscale * tr.dark + tr.cic;
        const double sigma = std::sqrt(f.variance.at(x, y) + bias_var(tr.read_noise) / (em * em));
        AddPull(p, f.data.at(x, y), truth, sigma);
      }
    }
    std::printf("%s: %lld pixels, %.4f within 1 sigma, %.4f within 3 sigma\n", what,
                static_cast<long long>(p.n), p.Fraction1(), p.Fraction3());
    EXPECT_GE(p.n, int64_t{o.data_width} * o.height * 99 / 100) << what;
    EXPECT_GE(p.Fraction3(), 0.99) << what;
    EXPECT_GE(p.Fraction1(), 0.60) << what;
    EXPECT_LE(p.Fraction1(), 0.76) << what;
  };
  check(dark, 1.0, "synthesized dark");

  // With a temperature: D scales by exp(c·(T − TEMPMOD)), TEMPMOD the frames' CCD-TEMP.
  const std::string st = dir_->File("synth_t.fits");
  MustRun({"synth-dark", "--detector", det, "--exptime", "45", "--em-gain", "300",
           "--temperature", absl::StrCat(o.temperature + 5), "-o", st});
  ASSERT_OK_AND_ASSIGN(CalibratedFrame warm, fits::ReadCalibratedFrame(st));
  check(warm, std::exp(o.dark_temperature_coefficient * 5), "temperature-scaled dark");

  // Lights at that setting calibrated with the synthesized dark (no flat: the data is then
  // g·sky·response in e⁻ at the spec's gain, within the calibrated frame's stated error); the
  // measured policy has no dark for them.
  const std::string red = dir_->File("red");
  std::vector<std::string> cal = {"calibrate", "--detector", det, "--dark-policy", "synthesized",
                                  "--skip", "flat", "--no-gain-product", "--unit", "electron",
                                  "-o", red};
  for (const auto& e : std::filesystem::directory_iterator(dir_->File("emccd/light"))) {
    cal.push_back(e.path().string());
  }
  ASSERT_EQ(cal.size(), 12u + o.n_light);
  r = Calibctl(cal);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("noise_model v1 (certified)"));
  for (int i = 0; i < o.n_light; ++i) {
    ASSERT_OK_AND_ASSIGN(
        CalibratedFrame light,
        fits::ReadCalibratedFrame(absl::StrCat(red, "/light_g300_t45_", i, ".fits")));
    EXPECT_EQ(*light.header.GetString("DARKSRC"), "synthesized");
    Pulls p;
    for (int y = 0; y < o.height; ++y) {
      for (int x = 0; x < o.data_width; ++x) {
        if (light.dq.at(x, y) != 0) continue;
        const client::NoiseTruth tr = client::NoiseTruthAt(o, x, y);
        AddPull(p, light.data.at(x, y), o.light_em_gain * o.light_sky * tr.response,
                std::sqrt(light.variance.at(x, y)));
      }
    }
    std::printf("light %d calibrated with the synthesized dark: %.4f within 1 sigma, %.4f within 3 sigma\n",
                i, p.Fraction1(), p.Fraction3());
    EXPECT_GE(p.Fraction3(), 0.99);
    EXPECT_GE(p.Fraction1(), 0.60);
    EXPECT_LE(p.Fraction1(), 0.76);
  }
  cal[4] = "measured";
  cal[11] = dir_->File("red_measured");
  r = Calibctl(cal);
  EXPECT_EQ(r.exit_code, 65) << r.err;
  EXPECT_THAT(r.err, HasSubstr("FAILED_PRECONDITION"));

  // calibctl select says in the trail which dark Calibrate would use under each policy.
  const std::string light0 = cal.back();
  r = Calibctl({"select", "--detector", det, "--dark-policy", "synthesized", "--json", light0});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("dark policy synthesized; to be synthesized from noise_model v1"));
  r = Calibctl({"select", "--detector", det, "--dark-policy", "measured_else_synthesized",
                "--json", light0});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("dark policy measured_else_synthesized: no measured dark"));
  EXPECT_THAT(r.out, HasSubstr("to be synthesized from noise_model v1"));
  r = Calibctl({"select", "--detector", det, "--dark-policy", "measured", "--json", light0});
  EXPECT_THAT(r.out + r.err, ::testing::Not(HasSubstr("to be synthesized")));

  // An existing output is refused before anything is asked; --overwrite replaces it.
  r = Calibctl({"synth-dark", "--detector", det, "--exptime", "45", "-o", sp});
  EXPECT_EQ(r.exit_code, 65) << r.err;
  EXPECT_THAT(r.err, HasSubstr("--overwrite"));
  MustRun({"synth-dark", "--detector", det, "--exptime", "45", "--version", "1", "--overwrite",
           "-o", sp});
  r = Calibctl({"synth-dark", "--detector", det, "--exptime", "45", "--version", "1", "--json",
                "--overwrite", "-o", sp});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("SELECTION_OUTCOME_PINNED"));
}

TEST_F(NoiseCliTest, WithoutANoiseModelTheDarkCurrentProductIsUsed) {
  const std::string det = "demo/dc0";
  client::NoiseSampleSet set = Samples("dc", det);
  std::vector<std::string> a = {"build", "--detector", det, "--kind", "dark_current",
                                "--certify-from", "2026-03-01"};
  a.insert(a.end(), set.dark.begin(), set.dark.end());
  MustRun(a);
  const std::string sp = dir_->File("dc_synth.fits");
  CliRun r = Calibctl({"synth-dark", "--detector", det, "--exptime", "200", "-o", sp});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("dark_current version 1"));
  ASSERT_OK_AND_ASSIGN(CalibratedFrame dark, fits::ReadCalibratedFrame(sp));
  EXPECT_EQ(*dark.header.GetString("SYNMODEL"), "dark_current");
  client::NoiseSampleOptions o;
  o.detector = det;
  Pulls p;
  for (int y = 0; y < o.height; ++y) {
    for (int x = 0; x < o.data_width; ++x) {
      if (dark.dq.at(x, y) != 0) continue;  // hot pixels are flagged
      AddPull(p, dark.data.at(x, y), 200 * client::NoiseTruthAt(o, x, y).dark,
              std::sqrt(dark.variance.at(x, y)));
    }
  }
  std::printf("dark_current fallback: %lld pixels, %.4f within 1 sigma, %.4f within 3 sigma\n",
              static_cast<long long>(p.n), p.Fraction1(), p.Fraction3());
  EXPECT_GE(p.n, int64_t{o.data_width} * o.height * 98 / 100);
  EXPECT_GE(p.Fraction3(), 0.99);
  EXPECT_GE(p.Fraction1(), 0.60);
  EXPECT_LE(p.Fraction1(), 0.76);
}

TEST_F(NoiseCliTest, SynthesizeDarkErrorsHaveExactCodes) {
  // A detector with neither product, and no dark temperature coefficient.
  const std::string spec = dir_->File("plain.json");
  client::SampleOptions plain;
  plain.detector = "demo/plain";
  std::ofstream(spec) << client::SampleSpecJson(plain);
  MustRun({"detector", "put", spec});

  auto channel = grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
  std::unique_ptr<v1::Noise::Stub> stub = v1::Noise::NewStub(channel);
  auto call = [&](const v1::SynthesizeDarkRequest& req, std::string* message) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    auto reader = stub->SynthesizeDark(&ctx, req);
    v1::SynthesizeDarkResponse resp;
    int messages = 0;
    while (reader->Read(&resp)) ++messages;
    grpc::Status s = reader->Finish();
    if (message != nullptr) *message = s.error_message();
    EXPECT_TRUE(s.ok() || messages == 0) << "an error after " << messages << " messages";
    return s.error_code();
  };
  v1::SynthesizeDarkRequest req;
  std::string message;
  req.set_detector("demo/plain");
  req.set_exptime(10);
  EXPECT_EQ(call(req, &message), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(message, HasSubstr("noise_model or dark_current"));
  req.set_exptime(0);
  EXPECT_EQ(call(req, &message), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(message, HasSubstr("exptime"));
  req.set_exptime(-5);
  EXPECT_EQ(call(req, nullptr), grpc::StatusCode::INVALID_ARGUMENT);
  req.set_exptime(std::nan(""));
  EXPECT_EQ(call(req, nullptr), grpc::StatusCode::INVALID_ARGUMENT);
  req.set_exptime(10);
  req.set_em_gain(-2);
  EXPECT_EQ(call(req, &message), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(message, HasSubstr("em_gain"));
  req.set_em_gain(0);
  req.set_temperature(-80);
  EXPECT_EQ(call(req, &message), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(message, HasSubstr("temperature coefficient"));
  req.clear_temperature();
  req.set_version(0);
  EXPECT_EQ(call(req, nullptr), grpc::StatusCode::INVALID_ARGUMENT);
  req.set_detector("demo/no-such-detector");
  req.set_version(1);
  EXPECT_EQ(call(req, nullptr), grpc::StatusCode::NOT_FOUND);

  // The same through calibctl: the exit code of each class.
  const std::string out = dir_->File("never.fits");
  CliRun r = Calibctl({"synth-dark", "--detector", "demo/plain", "--exptime", "10", "-o", out});
  EXPECT_EQ(r.exit_code, 66) << r.err;
  EXPECT_THAT(r.err, HasSubstr("NOT_FOUND"));
  EXPECT_THAT(r.err, HasSubstr("calibctl build --kind noise_model"));
  r = Calibctl({"synth-dark", "--detector", "demo/nobody", "--exptime", "10", "-o", out});
  EXPECT_EQ(r.exit_code, 66) << r.err;
  r = Calibctl({"synth-dark", "--detector", "demo/plain", "--exptime", "0", "-o", out});
  EXPECT_EQ(r.exit_code, 64) << r.err;
  r = Calibctl({"synth-dark", "--detector", "demo/plain", "--exptime", "10", "--temperature",
                "-80", "-o", out});
  EXPECT_EQ(r.exit_code, 65) << r.err;
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST_F(NoiseCliTest, GainNormalisationTablesAreStoredAndRefusedWhenNonsense) {
  const std::string det = "demo/gn0";
  client::NoiseSampleOptions o;
  o.detector = det;
  const std::string spec = dir_->File("gn.json");
  std::ofstream(spec) << client::NoiseSampleSpecJson(o);
  MustRun({"detector", "put", spec});

  std::vector<noise::GainNormalisationRow> rows = {
      {"low", 2, 3333.5, 2.5, 1.0, 0.0}, {"mid", 2, 6667.0, 3.1, 2.0, 0.0021},
      {"high", 2, 13334.0, 4.0, 4.0, 0.0037}};
  const std::string good = dir_->File("gn_good.fits");
  ASSERT_OK(noise::WriteNoiseProduct(good, noise::GainNormalisationProduct(rows, "GAINMODE")));
  CliRun r = Calibctl({"put", "--detector", det, "--kind", "gain_normalisation", good});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("gain_normalisation version 1"));
  const std::string back = dir_->File("gn_back.fits");
  MustRun({"get", "--detector", det, "--kind", "gain_normalisation", "--version", "1", "-o",
           back});
  EXPECT_EQ(ReadFile(back), ReadFile(good));  // the stored bytes, unchanged
  ASSERT_OK_AND_ASSIGN(noise::NoiseProduct table, noise::ReadNoiseProduct(back));
  EXPECT_EQ(table.kind, "gain_normalisation");
  EXPECT_EQ(*table.header.GetInt("NSETTING"), 3);
  EXPECT_EQ(*table.header.GetString("SET3"), "high");
  EXPECT_EQ(*table.header.GetDouble("RATIO2"), 2.0);

  auto refused = [&](std::vector<noise::GainNormalisationRow> bad, const char* why,
                     const std::string& kind = "gain_normalisation") {
    static int n = 0;
    const std::string p = dir_->File(absl::StrCat("gn_bad_", ++n, ".fits"));
    std::filesystem::remove(p);
    ASSERT_OK(noise::WriteNoiseProduct(p, noise::GainNormalisationProduct(bad, "GAINMODE")));
    CliRun b = Calibctl({"put", "--detector", det, "--kind", kind, p});
    EXPECT_EQ(b.exit_code, 65) << why << ": " << b.out << b.err;
    EXPECT_THAT(b.err, HasSubstr("INVALID_ARGUMENT"));
    EXPECT_THAT(b.err, HasSubstr(why));
  };
  std::vector<noise::GainNormalisationRow> neg = rows;
  neg[1].response = -1;
  refused(neg, "RESP2 must be a finite number > 0");
  std::vector<noise::GainNormalisationRow> dup = rows;
  dup[2].setting = "low";
  refused(dup, "appears twice");
  std::vector<noise::GainNormalisationRow> noref = rows;
  noref[0].ratio = 0.5;
  refused(noref, "reference setting");
  refused({rows[0]}, "NSETTING");
  refused(rows, "not flat", "flat");  // a table is not a flat
}

// calibctl build --kind gain_normalisation from flats of one illumination L at three gain
// settings (GAINMODE low/mid/high, gains 3, 1.5, 0.75 e⁻/ADU). After overscan subtraction a
// pixel's mean is L·r(x, y)/g_s ADU, so setting s responds L·<r>/g_s (<r> the truth RESPONSE
// map's mean) and its ratio to the lowest response ("low") is g_low/g_s = 1, 2, 4. Expected
// error of one setting's relative response: per pixel the noise is √(L·r + rn²) e⁻ on L·r e⁻,
// averaged over N pixels and n frames: ε = √(L<r> + rn²)/(L<r>·√(N·n)) (≈ 1.3e-4 here; the
// per-row overscan estimate adds ~1e-5), and a ratio of two settings √2·ε. Asserted within 5σ.
TEST_F(NoiseCliTest, GainNormalisationBuildsFromFlatsAtEachSetting) {
  const std::string det = "demo/gn1";
  Samples("gn_build", det);
  std::vector<std::string> flats;
  for (const auto& e : std::filesystem::directory_iterator(dir_->File("gn_build") + "/gainnorm")) {
    flats.push_back(e.path().string());
  }
  std::sort(flats.begin(), flats.end());
  const client::NoiseSampleOptions o;  // the defaults make-samples used
  ASSERT_EQ(flats.size(), o.gain_settings.size() * 2);
  std::vector<std::string> build = {"build", "--detector", det, "--kind", "gain_normalisation"};
  build.insert(build.end(), flats.begin(), flats.end());
  MustRun(build);
  const std::string out = dir_->File("gn_built.fits");
  MustRun({"get", "--detector", det, "--kind", "gain_normalisation", "--version", "1", "-o", out});
  ASSERT_OK_AND_ASSIGN(noise::NoiseProduct table, noise::ReadNoiseProduct(out));
  EXPECT_EQ(table.kind, "gain_normalisation");
  ASSERT_EQ(*table.header.GetInt("NSETTING"), 3);
  EXPECT_EQ(*table.header.GetString("SETKEY"), "GAINMODE");

  ASSERT_OK_AND_ASSIGN(noise::NoiseProduct truth,
                       noise::ReadNoiseProduct(dir_->File("gn_build") + "/TRUTH.fits"));
  const Image<float>* r = truth.Find("RESPONSE");
  ASSERT_NE(r, nullptr);
  double sum = 0;
  for (int y = 0; y < r->height(); ++y) {
    for (int x = 0; x < r->width(); ++x) sum += r->at(x, y);
  }
  const double n_pix = double(r->width()) * r->height();
  const double mean_r = sum / n_pix;
  const double signal = o.gainnorm_level * mean_r;  // e⁻
  const double rn = 0.5 * (o.read_noise_min + o.read_noise_max);
  const double eps = std::sqrt(signal + rn * rn) / (signal * std::sqrt(n_pix * 2));

  const double g_low = o.gain_settings[0].second;
  for (int i = 1; i <= 3; ++i) {
    const std::string setting = *table.header.GetString(absl::StrCat("SET", i));
    auto it = std::find_if(o.gain_settings.begin(), o.gain_settings.end(),
                           [&](const auto& s) { return s.first == setting; });
    ASSERT_NE(it, o.gain_settings.end()) << setting;
    const double resp = *table.header.GetDouble(absl::StrCat("RESP", i));
    const double ratio = *table.header.GetDouble(absl::StrCat("RATIO", i));
    const double want_resp = signal / it->second, want_ratio = g_low / it->second;
    EXPECT_NEAR(resp, want_resp, 5 * eps * want_resp) << setting;
    EXPECT_NEAR(ratio, want_ratio, 5 * std::sqrt(2.0) * eps * want_ratio) << setting;
    EXPECT_EQ(*table.header.GetInt(absl::StrCat("NFRAME", i)), 2) << setting;
  }
  // Flats of one setting only: a table needs two → the build is refused, nothing stored.
  std::vector<std::string> one = {"build", "--detector", det, "--kind", "gain_normalisation",
                                  flats[0], flats[1]};
  CliRun bad = Calibctl(one);
  EXPECT_EQ(bad.exit_code, 65) << bad.out << bad.err;
  EXPECT_THAT(bad.err, HasSubstr("INVALID_ARGUMENT"));
}

}  // namespace
}  // namespace calibd::testing
