// mTLS against the real binary, with certificates made here by the openssl CLI: a client
// without a certificate, with one from another CA, or with an expired one fails the handshake
// (UNAVAILABLE); the right one calls through.
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "calibd/v1/store.grpc.pb.h"
#include "core/status/status_matchers.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/testing/calibd_process.h"
#include "tests/testing/grpc_matchers.h"
#include "tests/testing/temp_dir.h"

namespace calibd::integration {
namespace {

using ::calibd::testing::CalibdProcess;
using ::calibd::testing::CalibdProcessOptions;
using ::calibd::testing::GrpcIs;

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Makes ca, ca2 (another CA), server (SAN 127.0.0.1), client, client2 (by ca2) and an expired
// client certificate (by ca, valid in 2020 only) in `dir`.
bool MakeCertificates(const std::string& dir) {
  {
    std::ofstream ext(dir + "/server.ext");
    ext << "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n";
    std::ofstream cext(dir + "/client.ext");
    cext << "extendedKeyUsage=clientAuth\n";
    std::ofstream cnf(dir + "/ca.cnf");
    cnf << "[ca]\ndefault_ca=test\n[test]\ndatabase=" << dir << "/index.txt\nnew_certs_dir=" << dir
        << "\nserial=" << dir << "/serial\ndefault_md=sha256\npolicy=pol\nunique_subject=no\n"
        << "[pol]\ncommonName=supplied\n";
    std::ofstream(dir + "/index.txt");
    std::ofstream(dir + "/serial") << "1000\n";
  }
  const std::string q = " -subj /CN=";
  const std::string script = absl::StrCat(
      "set -e; cd ", dir, "; exec >openssl.log 2>&1;",
      "for ca in ca ca2; do openssl req -x509 -newkey rsa:2048 -nodes -keyout $ca.key -out $ca.pem"
      " -days 2", q, "calibd-test-$ca; done;",
      "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr", q, "localhost;",
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2"
      " -extfile server.ext -out server.pem;",
      "for c in client client2 expired; do openssl req -newkey rsa:2048 -nodes -keyout $c.key"
      " -out $c.csr", q, "$c; done;",
      "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2"
      " -extfile client.ext -out client.pem;",
      "openssl x509 -req -in client2.csr -CA ca2.pem -CAkey ca2.key -CAcreateserial -days 2"
      " -extfile client.ext -out client2.pem;",
      "openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -in expired.csr"
      " -out expired.pem -startdate 20200101000000Z -enddate 20200102000000Z -notext;");
  return std::system(("bash -c '" + script + "'").c_str()) == 0;
}

std::shared_ptr<grpc::ChannelCredentials> Creds(const std::string& dir, const std::string& who) {
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = Slurp(dir + "/ca.pem");
  if (!who.empty()) {
    o.pem_private_key = Slurp(dir + "/" + who + ".key");
    o.pem_cert_chain = Slurp(dir + "/" + who + ".pem");
  }
  return grpc::SslCredentials(o);
}

grpc::Status ListDetectors(const std::string& address,
                           std::shared_ptr<grpc::ChannelCredentials> creds) {
  auto stub = v1::Store::NewStub(grpc::CreateChannel(address, creds));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::ListDetectorsResponse resp;
  return stub->ListDetectors(&ctx, {}, &resp);
}

TEST(TlsTest, MutualTlsRefusesWrongClientsAndAcceptsTheRightOne) {
  calibd::testing::TempDir dir;
  ASSERT_TRUE(MakeCertificates(dir.path())) << Slurp(dir.File("openssl.log"));
  CalibdProcessOptions options;
  options.extra_args = {"--tls-cert=" + dir.File("server.pem"),
                        "--tls-key=" + dir.File("server.key"), "--tls-ca=" + dir.File("ca.pem")};
  options.credentials = Creds(dir.path(), "client");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<CalibdProcess> calibd, CalibdProcess::Start(options));

  EXPECT_GRPC_OK(ListDetectors(calibd->address(), Creds(dir.path(), "client")));
  EXPECT_THAT(ListDetectors(calibd->address(), Creds(dir.path(), "")),
              GrpcIs(grpc::StatusCode::UNAVAILABLE)) << "no client certificate";
  EXPECT_THAT(ListDetectors(calibd->address(), Creds(dir.path(), "client2")),
              GrpcIs(grpc::StatusCode::UNAVAILABLE)) << "a certificate from another CA";
  EXPECT_THAT(ListDetectors(calibd->address(), Creds(dir.path(), "expired")),
              GrpcIs(grpc::StatusCode::UNAVAILABLE)) << "an expired certificate";
  EXPECT_THAT(ListDetectors(calibd->address(), grpc::InsecureChannelCredentials()),
              GrpcIs(grpc::StatusCode::UNAVAILABLE)) << "plaintext";
  // And the right one still works afterwards.
  EXPECT_GRPC_OK(ListDetectors(calibd->address(), Creds(dir.path(), "client")));
}

}  // namespace
}  // namespace calibd::integration
