// Helpers for the store tests: a small detector spec, distinct small masters, frame headers,
// and opening a store on either backend (embedded in a TempDir, or a fresh database on the
// shared test PostgreSQL server).
//
//   ASSERT_OK_AND_ASSIGN(StoreHandle h, OpenTestStore(Backend::kPostgres));
//   CalibratedFrame bias = MakeMaster(/*seed=*/1);
//
// Thread safety: functions are reentrant; a StoreHandle belongs to one test.
#ifndef CALIBD_TESTS_STORE_STORE_TEST_UTIL_H_
#define CALIBD_TESTS_STORE_STORE_TEST_UTIL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "core/image/frame.h"
#include "core/image/header.h"
#include "core/store/detector.h"
#include "core/store/store.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/temp_dir.h"

namespace calibd::store::testing {

enum class Backend { kEmbedded, kPostgres };

inline std::string BackendName(Backend b) {
  return b == Backend::kEmbedded ? "Embedded" : "Postgres";
}

constexpr char kDetector[] = "lfc/chip0";
constexpr int kRawWidth = 40, kRawHeight = 24;       // raw frame
constexpr int kMasterWidth = 32, kMasterHeight = 24;  // trimmed [1:32,*]

inline DetectorSpec TestSpec() {
  DetectorSpec spec;
  spec.name = kDetector;
  spec.width = kRawWidth;
  spec.height = kRawHeight;
  spec.overscan_section = "[33:40,*]";
  spec.trim_section = "[1:32,*]";
  spec.gain = 1.5;
  spec.read_noise = 4.0;
  spec.saturation = 60000;
  spec.tolerances = {{"exposure", 1.0}, {"temperature", 0.5}};
  return spec;
}

// A distinct master for every seed (data, variance and dq depend on it).
inline CalibratedFrame MakeMaster(int seed, int width = kMasterWidth, int height = kMasterHeight) {
  CalibratedFrame f;
  f.data = Image<float>::Allocate(width, height);
  f.variance = Image<float>::Allocate(width, height);
  f.dq = Image<uint16_t>::Filled(width, height, 0);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      f.data.data()[y * width + x] = 1000.0f + seed + 0.01f * x + 0.001f * y;
      f.variance.data()[y * width + x] = 4.0f + 0.5f * seed;
    }
  }
  f.dq.data()[seed % (width * height)] = 1;
  f.header.Set("SEED", int64_t{seed});
  return f;
}

// The header of a frame taken at `date_obs` with the given settings.
inline Header FrameHeader(const std::string& date_obs, double exptime = 30, double temp = -10,
                          const std::string& filter = "r", const std::string& readmode = "fast",
                          const std::string& binning = "1x1", const std::string& gain = "high") {
  Header h;
  h.Set("DATE-OBS", date_obs);
  h.Set("EXPTIME", exptime);
  h.Set("CCD-TEMP", temp);
  h.Set("FILTER", filter);
  h.Set("READMODE", readmode);
  h.Set("BINNING", binning);
  h.Set("GAINMODE", gain);
  return h;
}

struct StoreHandle {
  Backend backend;
  std::string url;
  std::string database;  // PostgreSQL only
  std::unique_ptr<calibd::testing::TempDir> dir;
  std::unique_ptr<CalibrationStore> store;
};

// Every page of a list, concatenated (page_size small enough to exercise the tokens).
inline absl::StatusOr<std::vector<MasterVersion>> AllMasters(CalibrationStore& store,
                                                             const MasterFilter& filter,
                                                             int32_t page_size = 7) {
  std::vector<MasterVersion> all;
  PageRequest page{page_size, ""};
  do {
    absl::StatusOr<Page<MasterVersion>> p = store.ListMasters(filter, page);
    if (!p.ok()) return p.status();
    for (MasterVersion& v : p->items) all.push_back(std::move(v));
    page.page_token = p->next_page_token;
  } while (!page.page_token.empty());
  return all;
}

inline absl::StatusOr<std::vector<MasterVersion>> AllHistory(CalibrationStore& store,
                                                             int64_t series_id,
                                                             int32_t page_size = 7) {
  std::vector<MasterVersion> all;
  PageRequest page{page_size, ""};
  do {
    absl::StatusOr<Page<MasterVersion>> p = store.History(series_id, page);
    if (!p.ok()) return p.status();
    for (MasterVersion& v : p->items) all.push_back(std::move(v));
    page.page_token = p->next_page_token;
  } while (!page.page_token.empty());
  return all;
}

inline absl::StatusOr<std::vector<DetectorRecord>> AllDetectors(CalibrationStore& store,
                                                                int32_t page_size = 7) {
  std::vector<DetectorRecord> all;
  PageRequest page{page_size, ""};
  do {
    absl::StatusOr<Page<DetectorRecord>> p = store.ListDetectors(page);
    if (!p.ok()) return p.status();
    for (DetectorRecord& d : p->items) all.push_back(std::move(d));
    page.page_token = p->next_page_token;
  } while (!page.page_token.empty());
  return all;
}

inline absl::StatusOr<StoreHandle> OpenTestStore(Backend backend) {
  StoreHandle h;
  h.backend = backend;
  if (backend == Backend::kEmbedded) {
    h.dir = std::make_unique<calibd::testing::TempDir>();
    h.url = h.dir->path() + "/store";
  } else {
    absl::StatusOr<calibd::testing::PostgresServer*> pg = calibd::testing::SharedPostgresServer();
    if (!pg.ok()) return pg.status();
    absl::StatusOr<std::string> url = (*pg)->CreateDatabase();
    if (!url.ok()) return url.status();
    h.url = *url;
    h.database = h.url.substr(h.url.rfind('/') + 1);
  }
  absl::StatusOr<std::unique_ptr<CalibrationStore>> store = OpenStore(h.url);
  if (!store.ok()) return store.status();
  h.store = *std::move(store);
  return h;
}

}  // namespace calibd::store::testing

#endif  // CALIBD_TESTS_STORE_STORE_TEST_UTIL_H_
