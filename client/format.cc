#include "client/format.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace calibd::client {
namespace {

size_t DisplayWidth(absl::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) {
    if ((c & 0xC0) != 0x80) ++n;  // count UTF-8 lead bytes only
  }
  return n;
}

}  // namespace

void Table::AddRow(std::vector<std::string> cells) {
  cells.resize(columns_.size());
  rows_.push_back(std::move(cells));
}

std::string Table::Render() const {
  std::vector<size_t> width(columns_.size(), 0);
  for (size_t c = 0; c < columns_.size(); ++c) width[c] = DisplayWidth(columns_[c]);
  for (const auto& row : rows_) {
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], DisplayWidth(row[c]));
  }
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    std::string l;
    for (size_t c = 0; c < cells.size(); ++c) {
      absl::StrAppend(&l, cells[c]);
      if (c + 1 < cells.size()) l.append(width[c] - DisplayWidth(cells[c]) + 2, ' ');
    }
    while (!l.empty() && l.back() == ' ') l.pop_back();
    absl::StrAppend(&out, l, "\n");
  };
  line(columns_);
  for (const auto& row : rows_) line(row);
  return out;
}

std::string JsonEscape(absl::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  return out;
}

void JsonWriter::BeforeValue() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!first_.empty()) {
    if (!first_.back()) out_.push_back(',');
    first_.back() = false;
  }
}

void JsonWriter::BeginObject() {
  BeforeValue();
  out_.push_back('{');
  first_.push_back(true);
}
void JsonWriter::EndObject() {
  out_.push_back('}');
  first_.pop_back();
}
void JsonWriter::BeginArray() {
  BeforeValue();
  out_.push_back('[');
  first_.push_back(true);
}
void JsonWriter::EndArray() {
  out_.push_back(']');
  first_.pop_back();
}
void JsonWriter::Key(absl::string_view key) {
  BeforeValue();
  absl::StrAppend(&out_, "\"", JsonEscape(key), "\":");
  after_key_ = true;
}
void JsonWriter::String(absl::string_view value) {
  BeforeValue();
  absl::StrAppend(&out_, "\"", JsonEscape(value), "\"");
}
void JsonWriter::Int(int64_t value) {
  BeforeValue();
  absl::StrAppend(&out_, value);
}
void JsonWriter::Double(double value) {
  BeforeValue();
  if (!std::isfinite(value)) {
    out_ += "null";
  } else {
    out_ += absl::StrFormat("%.17g", value);
  }
}
void JsonWriter::Bool(bool value) {
  BeforeValue();
  out_ += value ? "true" : "false";
}
void JsonWriter::Null() {
  BeforeValue();
  out_ += "null";
}
void JsonWriter::Raw(absl::string_view json) {
  BeforeValue();
  out_.append(json.data(), json.size());
}

std::string FormatBytes(int64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (std::fabs(v) >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  if (u == 0) return absl::StrCat(bytes, " B");
  return absl::StrFormat("%.1f %s", v, kUnits[u]);
}

std::string FormatSeconds(double s) {
  if (!std::isfinite(s)) return "-";
  if (s < 1e-3) return absl::StrFormat("%.0f µs", s * 1e6);
  if (s < 1) return absl::StrFormat("%.1f ms", s * 1e3);
  if (s < 60) return absl::StrFormat("%.2f s", s);
  const int64_t total = static_cast<int64_t>(std::llround(s));
  if (total < 3600) return absl::StrFormat("%dm%02ds", total / 60, total % 60);
  return absl::StrFormat("%dh%02dm", total / 3600, (total / 60) % 60);
}

std::string ShortSha(absl::string_view sha256) { return std::string(sha256.substr(0, 12)); }

std::string FormatNumber(double value, int digits) {
  if (!std::isfinite(value)) return std::isnan(value) ? "nan" : (value > 0 ? "inf" : "-inf");
  return absl::StrFormat("%.*g", digits, value);
}

bool ProgressBar::Enabled(bool json_output) { return !json_output && isatty(STDERR_FILENO) == 1; }

ProgressBar::ProgressBar(std::string label, int64_t total, bool enabled, bool bytes, FILE* out)
    : label_(std::move(label)),
      total_(total),
      enabled_(enabled),
      bytes_(bytes),
      out_(out),
      start_(absl::Now()) {}

ProgressBar::~ProgressBar() { Finish(); }

void ProgressBar::Update(int64_t done) {
  absl::MutexLock lock(&mu_);
  done_ = done;
  Draw(false);
}

void ProgressBar::Add(int64_t delta) {
  absl::MutexLock lock(&mu_);
  done_ += delta;
  Draw(false);
}

void ProgressBar::SetLabel(std::string label) {
  absl::MutexLock lock(&mu_);
  label_ = std::move(label);
  Draw(true);
}

void ProgressBar::SetTotal(int64_t total) {
  absl::MutexLock lock(&mu_);
  total_ = total;
}

void ProgressBar::Clear() {
  absl::MutexLock lock(&mu_);
  if (finished_ || !enabled_ || last_draw_ == absl::InfinitePast()) return;
  std::fputs("\r\033[K", out_);
  std::fflush(out_);
  last_draw_ = absl::InfinitePast();
}

void ProgressBar::Finish() {
  absl::MutexLock lock(&mu_);
  if (finished_) return;
  finished_ = true;
  if (enabled_ && last_draw_ != absl::InfinitePast()) {
    std::fputs("\r\033[K", out_);
    std::fflush(out_);
  }
}

void ProgressBar::Draw(bool force) {
  if (!enabled_ || finished_) return;
  const absl::Time now = absl::Now();
  // At most ~10 redraws per second, but always the last one.
  if (!force && done_ < total_ && now - last_draw_ < absl::Milliseconds(100)) return;
  last_draw_ = now;
  const std::string line =
      Render(label_, done_, total_, bytes_, absl::ToDoubleSeconds(now - start_), 24);
  std::fprintf(out_, "\r\033[K%s", line.c_str());
  std::fflush(out_);
}

std::string ProgressBar::Render(absl::string_view label, int64_t done, int64_t total, bool bytes,
                                double seconds, int width) {
  const double frac =
      total > 0 ? std::clamp(static_cast<double>(done) / static_cast<double>(total), 0.0, 1.0) : 0;
  const int filled = static_cast<int>(std::floor(frac * width));
  std::string bar = absl::StrCat("[", std::string(filled, '#'), std::string(width - filled, ' '),
                                 "]");
  std::string amount;
  if (bytes) {
    amount = absl::StrCat(FormatBytes(done), "/", FormatBytes(total));
    if (seconds > 0.05) {
      absl::StrAppend(&amount, " ", FormatBytes(static_cast<int64_t>(done / seconds)), "/s");
    }
  } else {
    amount = absl::StrCat(done, "/", total);
  }
  return absl::StrFormat("%s %s %3d%% %s", label, bar, static_cast<int>(std::floor(frac * 100)),
                         amount);
}

}  // namespace calibd::client
