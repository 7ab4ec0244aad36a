// The server's connection queue: `threads` workers serve accepted connections, and at most
// `capacity` accepted connections wait for one. httplib's own ThreadPool queues without bound; here
// the listener waits instead when the queue is full, so further clients wait in the kernel's
// listen backlog (bounded) rather than in this process's memory. Shutdown serves every queued
// connection, then joins the workers (the drain on SIGTERM).
#pragma once

#include <httplib.h>

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace tlm::cli {

class ConnectionQueue : public httplib::TaskQueue {
 public:
  ConnectionQueue(size_t threads, size_t capacity);
  ~ConnectionQueue() override;
  ConnectionQueue(const ConnectionQueue&) = delete;
  ConnectionQueue& operator=(const ConnectionQueue&) = delete;

  // Blocks while `capacity` connections wait (until a worker takes one, or shutdown). httplib
  // shuts the queue down after its accept loop; a connection given after that is served inline.
  void enqueue(std::function<void()> fn) override;
  void shutdown() override;  // serves what waits, then joins the workers; callable more than once
  size_t waiting() const;    // connections accepted and not yet taken by a worker

 private:
  void work();
  mutable std::mutex mutex_;
  std::condition_variable job_ready_, space_free_;
  std::deque<std::function<void()>> jobs_;
  size_t capacity_;
  bool shutdown_ = false, joined_ = false;
  std::mutex join_mutex_;  // one shutdown joins the workers; a concurrent one waits for it
  std::vector<std::thread> workers_;
};

}  // namespace tlm::cli
