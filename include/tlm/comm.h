// The processes that train one model together (MPI ranks under mpirun or srun), or this one
// process alone. MPI is started only when a launcher started tlm (its environment says so), so a
// plain `tlm` never touches MPI; a build without MPI refuses to run under a launcher with more than
// one rank, instead of silently training N independent copies.
#pragma once

#include <cstdint>
#include <string>

namespace tlm {

class Comm {
 public:
  // The world of this program's processes: initialised on first use.
  static Comm& world();
  // Ends MPI (if started) at a normal exit; after an error on one rank, abort() ends every rank.
  static void finalize();

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool leader() const { return rank_ == 0; }  // the rank that alone writes a run's files
  bool distributed() const { return size_ > 1; }
  // Whether MPI may be called from another thread than the main one, one thread at a time (the
  // library granted MPI_THREAD_SERIALIZED); true for one process.
  bool serialized_threads() const { return !mpi_ || serialized_; }

  // Sums x (n values) over the ranks in place. Every rank receives the same bits: a reduction to
  // rank 0, then rank 0's result broadcast, so replicas of a model never drift apart.
  void sum(float* x, int64_t n) const;
  void sum(double* x, int64_t n) const;
  void sum(int64_t* x, int64_t n) const;
  // MPI_Allreduce with the library's own algorithm: ranks are not promised the same bits. Only for
  // measuring what the guarantee of sum() costs (tlm bench allreduce).
  void sum_by_library(float* x, int64_t n) const;
  int64_t max(int64_t v) const;
  // Rank 0's n values to every rank.
  void broadcast(int64_t* x, int64_t n) const;
  void barrier() const;
  // Point to point, for the experiment scheduler's short messages (a few integers): send blocks
  // until the message is buffered; try_receive takes one waiting message of exactly n values from
  // any rank (its source in *from) or returns false at once when none is waiting.
  void send(int to, const int64_t* x, int n) const;
  bool try_receive(int64_t* x, int n, int* from) const;
  // Which machine this rank runs on: TLM_NODE_NAME when set (tests give each rank a node of its
  // own; containers whose host names collide can name theirs), else MPI's processor name.
  std::string node_name() const;
  // Ends every rank of the job with `code` (the launcher's abort); returns only without MPI.
  void abort(int code) const;
  // "Open MPI v4.1.4, 2 ranks"-like, for manifests; empty for one process without MPI.
  std::string describe() const;

 private:
  Comm() = default;
  int rank_ = 0, size_ = 1;
  bool mpi_ = false;
  bool serialized_ = false;
};

// Whether this build has MPI (a CMake option, on where Open MPI's development package is found).
bool mpi_built();

}  // namespace tlm
