#include "tests/cluster/prometheus_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/json_util.h"
#include "tests/testing/calibd_process.h"

namespace calibd::cluster {

absl::StatusOr<std::string> HttpGet(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const int e = errno;
    close(fd);
    return absl::UnavailableError(absl::StrCat("connect to port ", port, ": ", std::strerror(e)));
  }
  const std::string req = absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
  if (write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return absl::UnavailableError("write failed");
  }
  std::string response;
  char buf[16384];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) response.append(buf, static_cast<size_t>(n));
  close(fd);
  const size_t body = response.find("\r\n\r\n");
  if (!absl::StartsWith(response, "HTTP/1.") || body == std::string::npos) {
    return absl::UnavailableError(absl::StrCat("no HTTP answer on port ", port));
  }
  const std::string status_line = response.substr(0, response.find("\r\n"));
  if (!absl::StrContains(status_line, " 200")) {
    return absl::InternalError(absl::StrCat(path, ": ", status_line));
  }
  return response.substr(body + 4);
}

absl::StatusOr<google::protobuf::Value> ParseJson(const std::string& json) {
  google::protobuf::Value value;
  auto s = google::protobuf::util::JsonStringToMessage(json, &value);
  if (!s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not JSON: ", s.ToString(), ": ", json.substr(0, 200)));
  }
  return value;
}

absl::StatusOr<double> SumSamples(const std::string& exposition, const std::string& name,
                                  const std::string& filter) {
  double sum = 0;
  bool found = false;
  for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
    if (line.empty() || line[0] == '#' || !absl::StartsWith(line, name)) continue;
    const absl::string_view rest = line.substr(name.size());
    if (rest.empty() || (rest[0] != '{' && rest[0] != ' ')) continue;  // a longer name
    if (!filter.empty() && !absl::StrContains(line, filter)) continue;
    const size_t space = line.rfind(' ');
    double v = 0;
    if (space == absl::string_view::npos || !absl::SimpleAtod(line.substr(space + 1), &v)) {
      continue;
    }
    sum += v;
    found = true;
  }
  if (!found) return absl::NotFoundError(absl::StrCat("no sample of ", name));
  return sum;
}

absl::StatusOr<std::unique_ptr<PrometheusProcess>> PrometheusProcess::Start(
    const std::vector<std::string>& targets, const std::string& rules_yaml,
    absl::Duration timeout) {
  std::unique_ptr<PrometheusProcess> p(new PrometheusProcess());
  p->dir_ = std::make_unique<testing::TempDir>();
  const std::string rules = p->dir_->File("rules.yaml");
  const std::string config = p->dir_->File("prometheus.yml");
  const std::string tsdb = p->dir_->File("tsdb");
  const std::string log = p->dir_->File("prometheus.log");
  std::ofstream(rules) << rules_yaml;
  std::vector<std::string> quoted;
  for (const std::string& t : targets) quoted.push_back(absl::StrCat("\"", t, "\""));
  // One-second scrapes and evaluations: an alert's `for:` is the only wait.
  std::ofstream(config) << "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                        << "  evaluation_interval: 1s\n"
                        << "rule_files:\n  - " << rules << "\n"
                        << "scrape_configs:\n  - job_name: calibd\n    static_configs:\n"
                        << "      - targets: [" << absl::StrJoin(quoted, ", ") << "]\n";
  absl::StatusOr<int> port = testing::PickFreePort();
  if (!port.ok()) return port.status();
  p->port_ = *port;
  std::vector<std::string> args = {
      "prometheus", "--config.file=" + config, "--storage.tsdb.path=" + tsdb,
      absl::StrCat("--web.listen-address=127.0.0.1:", p->port_), "--log.level=warn"};
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execvp("prometheus", argv.data());
    _exit(127);
  }
  p->pid_ = pid;
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (HttpGet(p->port_, "/-/ready").ok()) return p;
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      p->pid_ = -1;
      return absl::UnavailableError(absl::StrCat("prometheus exited: ", p->Log()));
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  return absl::DeadlineExceededError(absl::StrCat("prometheus not ready: ", p->Log()));
}

PrometheusProcess::~PrometheusProcess() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  for (int i = 0; i < 50; ++i) {
    if (waitpid(pid_, nullptr, WNOHANG) == pid_) return;
    absl::SleepFor(absl::Milliseconds(100));
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
}

absl::StatusOr<google::protobuf::Value> PrometheusProcess::Api(const std::string& path) const {
  absl::StatusOr<std::string> body = HttpGet(port_, path);
  if (!body.ok()) return body.status();
  absl::StatusOr<google::protobuf::Value> v = ParseJson(*body);
  if (!v.ok()) return v.status();
  const auto& fields = v->struct_value().fields();
  auto it = fields.find("status");
  if (it == fields.end() || it->second.string_value() != "success") {
    return absl::FailedPreconditionError(absl::StrCat(path, ": ", body->substr(0, 300)));
  }
  return v;
}

std::string PrometheusProcess::Log() const {
  std::ifstream in(dir_->File("prometheus.log"));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > 4000 ? s.substr(s.size() - 4000) : s;
}

}  // namespace calibd::cluster
