#include "tlm/comm.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "tlm/check.h"

#ifdef TLM_HAVE_MPI
#include <mpi.h>
#endif

namespace tlm {

namespace {

// The number of ranks a launcher says it started: Open MPI's mpirun, the PMI of MPICH or Slurm's
// srun, or PMIx (with Slurm's task count). 0: no launcher; -1: a launcher that does not say.
// One rank is one process: MPI is not started for it (nor for the programs it runs, which
// inherit its environment).
int launched_ranks() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"}) {
    if (const char* v = std::getenv(var)) return std::max(1, std::atoi(v));
  }
  if (!std::getenv("PMIX_RANK")) return 0;
  const char* tasks = std::getenv("SLURM_NTASKS");
  return tasks ? std::max(1, std::atoi(tasks)) : -1;
}

#ifdef TLM_HAVE_MPI
// The tag of point-to-point messages (collectives do not use tags).
constexpr int kMessageTag = 7;
// MPI counts are ints: longer buffers go in pieces.
constexpr int64_t kPiece = int64_t{1} << 30;

template <typename T>
MPI_Datatype mpi_type();
template <>
MPI_Datatype mpi_type<float>() {
  return MPI_FLOAT;
}
template <>
MPI_Datatype mpi_type<double>() {
  return MPI_DOUBLE;
}
template <>
MPI_Datatype mpi_type<int64_t>() {
  return MPI_INT64_T;
}

void check_mpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw Error(fmt::format("MPI {} failed: {}", what, std::string(text, static_cast<size_t>(len))));
}

template <typename T>
void reduce_then_broadcast(T* x, int64_t n, int rank) {
  for (int64_t at = 0; at < n; at += kPiece) {
    const int count = static_cast<int>(std::min(kPiece, n - at));
    T* p = x + at;
    check_mpi(MPI_Reduce(rank == 0 ? MPI_IN_PLACE : p, rank == 0 ? p : nullptr, count, mpi_type<T>(), MPI_SUM, 0,
                         MPI_COMM_WORLD),
              "reduce");
    check_mpi(MPI_Bcast(p, count, mpi_type<T>(), 0, MPI_COMM_WORLD), "broadcast");
  }
}
#endif

}  // namespace

bool mpi_built() {
#ifdef TLM_HAVE_MPI
  return true;
#else
  return false;
#endif
}

Comm& Comm::world() {
  static Comm* comm = [] {
    auto* c = new Comm();  // never destroyed: finalize() ends MPI at exit
    const int launched = launched_ranks();
    if (launched == 0 || launched == 1) return c;
#ifdef TLM_HAVE_MPI
    int provided = 0;
    // OpenMP threads compute; MPI is called by one thread at a time: the main thread, or the
    // thread that sums gradients during backward (--overlap-grads) while the main thread does not.
    // That is MPI_THREAD_SERIALIZED, but MULTIPLE is asked: Open MPI before 4.1.7/5.0.4 (ompi PR
    // 12613) made UCX's worker single-threaded under SERIALIZED, which is unsafe when the calling
    // thread changes (InfiniBand clusters); a few large collectives per step pay nothing for it.
    check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided), "initialisation");
    c->serialized_ = provided >= MPI_THREAD_SERIALIZED;
    // Errors come back as codes (and become exceptions here) instead of ending the job silently.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    c->mpi_ = true;
    MPI_Comm_rank(MPI_COMM_WORLD, &c->rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &c->size_);
    // Another MPI's launcher (MPICH's mpiexec, srun --mpi=pmi2 for this Open MPI), or variables
    // inherited from a parent MPI program, leave each process a world of its own: it would train
    // alone, so refuse.
    if (launched > 0 && c->size_ != launched) {
      throw Error(fmt::format(
          "the launcher started {} ranks but MPI sees a world of {}: start tlm with Open MPI's mpirun (or srun "
          "--mpi=pmix), or unset {} when tlm is not meant to run as one of several ranks",
          launched, c->size_, std::getenv("OMPI_COMM_WORLD_SIZE") ? "OMPI_COMM_WORLD_SIZE" : "PMI_SIZE"));
    }
#else
    throw Error(fmt::format(
        "started as one of {} MPI ranks, but this tlm was built without MPI: each rank would train alone. "
        "Install Open MPI (scripts/install-deps.sh installs libopenmpi-dev) and rebuild, or run one process",
        launched > 0 ? std::to_string(launched) : std::string("several")));
#endif
    return c;
  }();
  return *comm;
}

void Comm::finalize() {
#ifdef TLM_HAVE_MPI
  int started = 0, finished = 0;
  MPI_Initialized(&started);
  MPI_Finalized(&finished);
  if (started && !finished) MPI_Finalize();
#endif
}

namespace {

template <typename T>
void sum_over_ranks(T* x, int64_t n, int rank, int size) {
#ifdef TLM_HAVE_MPI
  if (size > 1) reduce_then_broadcast(x, n, rank);
#else
  (void)x, (void)n, (void)rank, (void)size;
#endif
}

}  // namespace

void Comm::sum(float* x, int64_t n) const { sum_over_ranks(x, n, rank_, size_); }
void Comm::sum(double* x, int64_t n) const { sum_over_ranks(x, n, rank_, size_); }
void Comm::sum(int64_t* x, int64_t n) const { sum_over_ranks(x, n, rank_, size_); }

void Comm::sum_by_library(float* x, int64_t n) const {
#ifdef TLM_HAVE_MPI
  if (size_ > 1) {
    for (int64_t at = 0; at < n; at += kPiece) {
      check_mpi(MPI_Allreduce(MPI_IN_PLACE, x + at, static_cast<int>(std::min(kPiece, n - at)), MPI_FLOAT, MPI_SUM,
                              MPI_COMM_WORLD),
                "allreduce");
    }
  }
#else
  (void)x, (void)n;
#endif
}

int64_t Comm::max(int64_t v) const {
#ifdef TLM_HAVE_MPI
  if (size_ > 1) check_mpi(MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD), "maximum");
#endif
  return v;
}

void Comm::broadcast(int64_t* x, int64_t n) const {
#ifdef TLM_HAVE_MPI
  if (size_ > 1) {
    for (int64_t at = 0; at < n; at += kPiece) {
      check_mpi(MPI_Bcast(x + at, static_cast<int>(std::min(kPiece, n - at)), MPI_INT64_T, 0, MPI_COMM_WORLD),
                "broadcast");
    }
  }
#else
  (void)x, (void)n;
#endif
}

void Comm::barrier() const {
#ifdef TLM_HAVE_MPI
  if (size_ > 1) check_mpi(MPI_Barrier(MPI_COMM_WORLD), "barrier");
#endif
}

void Comm::send(int to, const int64_t* x, int n) const {
#ifdef TLM_HAVE_MPI
  if (mpi_) {
    check_mpi(MPI_Send(x, n, MPI_INT64_T, to, kMessageTag, MPI_COMM_WORLD), "send");
    return;
  }
#endif
  (void)x, (void)n;
  throw Error(fmt::format("no rank {} to send to: this process runs alone", to));
}

bool Comm::try_receive(int64_t* x, int n, int* from) const {
#ifdef TLM_HAVE_MPI
  if (mpi_) {
    int waiting = 0;
    MPI_Status status;
    check_mpi(MPI_Iprobe(MPI_ANY_SOURCE, kMessageTag, MPI_COMM_WORLD, &waiting, &status), "probe");
    if (!waiting) return false;
    int count = 0;
    MPI_Get_count(&status, MPI_INT64_T, &count);
    TLM_CHECK(count == n, "rank {} sent a message of {} values, expected {}", status.MPI_SOURCE, count, n);
    check_mpi(MPI_Recv(x, n, MPI_INT64_T, status.MPI_SOURCE, kMessageTag, MPI_COMM_WORLD, MPI_STATUS_IGNORE),
              "receive");
    *from = status.MPI_SOURCE;
    return true;
  }
#endif
  (void)x, (void)n, (void)from;
  return false;
}

std::string Comm::node_name() const {
  if (const char* name = std::getenv("TLM_NODE_NAME"); name && *name) return name;
#ifdef TLM_HAVE_MPI
  if (mpi_) {
    char name[MPI_MAX_PROCESSOR_NAME];
    int len = 0;
    check_mpi(MPI_Get_processor_name(name, &len), "processor name");
    return std::string(name, static_cast<size_t>(len));
  }
#endif
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return host;
}

void Comm::abort(int code) const {
#ifdef TLM_HAVE_MPI
  if (mpi_) MPI_Abort(MPI_COMM_WORLD, code);
#else
  (void)code;
#endif
}

std::string Comm::describe() const {
#ifdef TLM_HAVE_MPI
  if (mpi_) {
    char version[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(version, &len);
    std::string v(version, static_cast<size_t>(len));
    v = v.substr(0, v.find_first_of(",\n"));  // "Open MPI v4.1.4"
    return fmt::format("{}, {} ranks", v, size_);
  }
#endif
  return "";
}

}  // namespace tlm
