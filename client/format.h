// Output for calibctl: aligned text tables for people, a small JSON writer for --json (one
// document on stdout, stable keys), human sizes and durations, and a progress bar that only
// draws on a terminal.
//
//   Table t({"VERSION", "SHA256", "CERTIFIED"});
//   t.AddRow({"3", "ab12…", "2026-03-01T00:00:00Z → open"});
//   std::cout << t.Render();
//
//   JsonWriter j;                     // {"version":3,"sha256":"ab12"}
//   j.BeginObject(); j.Key("version"); j.Int(3); j.Key("sha256"); j.String("ab12"); j.EndObject();
//   std::cout << j.str() << "\n";
//
//   ProgressBar bar("upload bias.fits", total_bytes, ProgressBar::Enabled(json));
//   bar.Update(done_bytes);  ...  bar.Finish();
//
// Thread safety: Table and JsonWriter are values with one owner. ProgressBar::Update may be
// called from any thread (it serialises its drawing).
#ifndef CALIBD_CLIENT_FORMAT_H_
#define CALIBD_CLIENT_FORMAT_H_

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace calibd::client {

class Table {
 public:
  explicit Table(std::vector<std::string> columns) : columns_(std::move(columns)) {}
  // Missing cells are blank; extra cells are an error in the caller (ignored).
  void AddRow(std::vector<std::string> cells);
  size_t rows() const { return rows_.size(); }
  // Columns padded to their widest cell (counted in UTF-8 code points), two spaces apart,
  // no trailing blanks; every line ends with '\n'.
  std::string Render() const;

 private:
  std::vector<std::string> columns_;
  std::vector<std::vector<std::string>> rows_;
};

// Writes compact JSON. Commas are placed automatically; strings are escaped (control
// characters as \u00XX, UTF-8 passed through). Non-finite doubles are written as null.
class JsonWriter {
 public:
  void BeginObject();
  void EndObject();
  void BeginArray();
  void EndArray();
  void Key(absl::string_view key);
  void String(absl::string_view value);
  void Int(int64_t value);
  void Double(double value);
  void Bool(bool value);
  void Null();
  // A value that is already JSON (e.g. a protobuf message rendered by protobuf's JSON printer).
  void Raw(absl::string_view json);
  const std::string& str() const { return out_; }

 private:
  void BeforeValue();
  std::string out_;
  std::vector<bool> first_;  // per open container: no element written yet
  bool after_key_ = false;
};

std::string JsonEscape(absl::string_view s);

// 1536 → "1.5 KiB", 3221225472 → "3.0 GiB".
std::string FormatBytes(int64_t bytes);
// 0.0042 → "4.2 ms", 75 → "1m15s".
std::string FormatSeconds(double seconds);
// Shortens a sha256 for tables: the first 12 hex digits.
std::string ShortSha(absl::string_view sha256);
// Number formatting for tables: up to `digits` significant digits, no exponent for ordinary
// magnitudes.
std::string FormatNumber(double value, int digits = 6);

class ProgressBar {
 public:
  // Drawing is on when stderr is a terminal and the output is not --json.
  static bool Enabled(bool json_output);

  // `total` in bytes (or items when `bytes` is false). Draws nothing when !enabled.
  ProgressBar(std::string label, int64_t total, bool enabled, bool bytes = true,
              FILE* out = stderr);
  ~ProgressBar();  // Finish() if not done
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void Update(int64_t done);
  void Add(int64_t delta);
  void SetLabel(std::string label);
  // For totals learnt late (a download's size arrives with its first message).
  void SetTotal(int64_t total);
  // Erases the bar so the caller can print a line; the next Update draws it again.
  void Clear();
  // Erases the bar for good (the caller prints its own result line).
  void Finish();

  // The text drawn for a state, e.g. "upload bias.fits [#####     ] 50% 1.0/2.0 MiB 12 MiB/s";
  // exposed for tests.
  static std::string Render(absl::string_view label, int64_t done, int64_t total, bool bytes,
                            double seconds, int width);

 private:
  void Draw(bool force) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::string label_ ABSL_GUARDED_BY(mu_);
  int64_t total_ ABSL_GUARDED_BY(mu_);
  int64_t done_ ABSL_GUARDED_BY(mu_) = 0;
  const bool enabled_;
  const bool bytes_;
  FILE* const out_;
  const absl::Time start_;
  absl::Time last_draw_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace calibd::client

#endif  // CALIBD_CLIENT_FORMAT_H_
