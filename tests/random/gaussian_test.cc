#include "core/random/gaussian.h"

#include <cmath>
#include <cstdint>

#include "gtest/gtest.h"

namespace calibd::random {
namespace {

// splitmix64's published reference stream from state 1234567 (Vigna's splitmix64.c).
TEST(Mix64, MatchesTheReferenceSplitmix64Stream) {
  uint64_t state = 1234567;
  const uint64_t expected[] = {6457827717110365317ull, 3203168211198807973ull,
                               9817491932198370423ull, 4593380528125082431ull,
                               16408922859458223821ull};
  for (uint64_t e : expected) {
    EXPECT_EQ(Mix64(state), e);
    state += kGoldenGamma;
  }
}

TEST(Gaussian, StreamIsSplitmix64FromTheDocumentedSeedState) {
  Gaussian g(42);
  uint64_t state = 42 * kGoldenGamma + 1;
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(g.Bits(), Mix64(state));
    state += kGoldenGamma;
  }
}

TEST(Gaussian, SameSeedSameStreamDifferentSeedDifferentStream) {
  Gaussian a(7), b(7), c(8);
  int differ = 0;
  for (int i = 0; i < 100; ++i) {
    const double x = a.Next();
    EXPECT_EQ(x, b.Next());
    differ += x != c.Next();
  }
  EXPECT_EQ(differ, 100);
}

// Moments of N(0,1) from n samples: mean SE 1/√n, variance SE √(2/n), kurtosis (E x⁴ = 3) SE
// √(96/n); 5σ bounds.
TEST(Gaussian, MomentsAreStandardNormal) {
  constexpr int n = 200000;
  Gaussian g(3);
  double s1 = 0, s2 = 0, s4 = 0;
  int within1 = 0;
  for (int i = 0; i < n; ++i) {
    const double x = g.Next();
    s1 += x;
    s2 += x * x;
    s4 += x * x * x * x;
    within1 += std::abs(x) < 1;
  }
  EXPECT_NEAR(s1 / n, 0.0, 5 / std::sqrt(n));
  EXPECT_NEAR(s2 / n, 1.0, 5 * std::sqrt(2.0 / n));
  EXPECT_NEAR(s4 / n, 3.0, 5 * std::sqrt(96.0 / n));
  // P(|x| < 1) = erf(1/√2) = 0.682689…, binomial SE.
  const double p = std::erf(1 / std::sqrt(2.0));
  EXPECT_NEAR(double(within1) / n, p, 5 * std::sqrt(p * (1 - p) / n));
}

TEST(Gaussian, UniformIsInUnitIntervalWithUniformMoments) {
  constexpr int n = 200000;
  Gaussian g(11);
  double s1 = 0, s2 = 0;
  for (int i = 0; i < n; ++i) {
    const double u = g.Uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    s1 += u;
    s2 += u * u;
  }
  // Mean 1/2 (SE √(1/12n)), E u² = 1/3 (SE √(4/45n)).
  EXPECT_NEAR(s1 / n, 0.5, 5 * std::sqrt(1.0 / (12 * n)));
  EXPECT_NEAR(s2 / n, 1.0 / 3, 5 * std::sqrt(4.0 / (45 * n)));
}

TEST(HashUniform, DependsOnlyOnItsArguments) {
  EXPECT_EQ(HashUniform(1, 2, 3), HashUniform(1, 2, 3));
  EXPECT_NE(HashUniform(1, 2, 3), HashUniform(1, 3, 2));
  EXPECT_NE(HashUniform(1, 2, 3), HashUniform(2, 2, 3));
  EXPECT_EQ(HashUniform(5, 6, 7), ToUnit(Mix64(5 ^ Mix64(6 * 0x100000001B3ull + 7))));
  double s = 0;
  for (int x = 0; x < 1000; ++x) s += HashUniform(9, x, 0);
  EXPECT_NEAR(s / 1000, 0.5, 5 * std::sqrt(1.0 / 12000));
}

}  // namespace
}  // namespace calibd::random
