// tlm serve's connection queue: bounded (the listener waits when it is full) and drained on shutdown.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>

#include "cli/connection_queue.h"

TEST(ConnectionQueue, TheListenerWaitsWhenFullAndShutdownServesEveryConnection) {
  tlm::cli::ConnectionQueue queue(1, 2);  // one worker, two waiting connections at most
  std::promise<void> release, started;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> served{0};
  queue.enqueue([&] {
    started.set_value();
    released.wait();
    ++served;
  });
  started.get_future().wait();  // the worker holds the first connection
  queue.enqueue([&] { ++served; });
  queue.enqueue([&] { ++served; });
  EXPECT_EQ(queue.waiting(), 2u);
  auto fourth = std::async(std::launch::async, [&] { queue.enqueue([&] { ++served; }); });
  // full: the listener's enqueue does not return while the worker is held
  EXPECT_EQ(fourth.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout);
  EXPECT_EQ(queue.waiting(), 2u);
  release.set_value();
  fourth.get();
  queue.shutdown();  // serves what waits, then joins
  EXPECT_EQ(served.load(), 4);
  EXPECT_EQ(queue.waiting(), 0u);
}
