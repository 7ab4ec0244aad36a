// OverlappedGradientSum in one process (its sums are no-ops there; tests/cli/test_mpi.sh checks
// them under mpirun): the reports it accepts and refuses, and that a step ends only once every
// bucket was reported.
#include <gtest/gtest.h>

#include <utility>
#include <vector>

#include "tlm/check.h"
#include "tlm/comm.h"
#include "tlm/gradient_sum.h"

namespace tlm::testing {
namespace {

TEST(OverlappedGradientSum, BucketsOfMegabytes) {
  EXPECT_EQ(bucket_floats(25), 25 * 1024 * 1024 / 4);
  EXPECT_EQ(bucket_floats(1e-9), 1);  // never an empty bucket
}

TEST(OverlappedGradientSum, BucketsEndAtReportedOffsets) {
  std::vector<float> grads(1000);
  const std::vector<int64_t> reports = {900, 640, 130, 0};  // after the head, two layers, the embeddings
  for (const auto& [bucket, starts] : std::vector<std::pair<int64_t, std::vector<int64_t>>>{
           {64, {900, 640, 130, 0}},  // every report closes a bucket
           {300, {640, 130, 0}},      // the head joins the top layer's bucket
           {2000, {0}}}) {            // one bucket, summed after backward
    OverlappedGradientSum sum(Comm::world(), bucket);
    sum.begin(grads.data(), 1000, reports);
    EXPECT_EQ(sum.bucket_starts(), starts) << "bucket " << bucket;
    for (int64_t from : reports) sum.final_from(from);
    sum.finish();
  }
}

TEST(OverlappedGradientSum, StepsEndOnceEveryBucketIsReported) {
  std::vector<float> grads(1000, 1.0f);
  OverlappedGradientSum sum(Comm::world(), 64);
  for (int step = 0; step < 3; ++step) {
    sum.begin(grads.data(), 1000, {900, 640, 130, 0});
    for (int64_t from : {900, 900, 640, 130, 0}) sum.final_from(from);
    EXPECT_GE(sum.finish(), 0.0);
  }
  EXPECT_EQ(grads, std::vector<float>(1000, 1.0f));  // one process: summing leaves the values
}

TEST(OverlappedGradientSum, RefusesRisingOffsetsAndAnEarlyFinish) {
  std::vector<float> grads(100);
  OverlappedGradientSum sum(Comm::world(), 10);
  EXPECT_THROW(sum.begin(grads.data(), 100, {50, 60, 0}), Error);
  EXPECT_THROW(sum.begin(grads.data(), 100, {50}), Error);  // not ending at 0
  sum.begin(grads.data(), 100, {50, 0});
  sum.final_from(50);
  EXPECT_THROW(sum.final_from(60), Error);
  EXPECT_THROW(sum.finish(), Error);  // [0, 50) was never reported
  sum.final_from(0);
  sum.finish();
  EXPECT_THROW(OverlappedGradientSum(Comm::world(), 0), Error);
}

}  // namespace
}  // namespace tlm::testing
