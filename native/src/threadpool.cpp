#include "threadpool.h"

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace plinth {
namespace {

thread_local int tls_index = 0;

class Pool {
 public:
  explicit Pool(int n) { start(n); }
  ~Pool() { stop(); }

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  void resize(int n) {
    if (n == size()) return;
    stop();
    start(n);
  }

  void run(int64_t n, TaskFn fn, void* ctx) {
    const int threads = size();
    if (n <= 1 || threads == 1 || in_job_ || tls_index != 0) {
      fn(ctx, 0, n);
      return;
    }
    const int used = static_cast<int>(n < threads ? n : threads);
    {
      std::lock_guard<std::mutex> lock(mu_);
      fn_ = fn;
      ctx_ = ctx;
      n_ = n;
      used_ = used;
      pending_.store(used - 1, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    in_job_ = true;
    fn(ctx, 0, range_end(0, n, used));
    in_job_ = false;
    // The worker ranges are the same size as ours: a short spin is cheaper than a futex;
    // yield if it drags on (an oversubscribed machine).
    for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; spins++) {
      if (spins > 4096) std::this_thread::yield();
    }
  }

 private:
  static int64_t range_end(int i, int64_t n, int used) { return n * (i + 1) / used; }

  void start(int n) {
    quit_ = false;
    // Each worker starts from the generation current now; reading it inside the new
    // thread instead would race with a job posted before the thread first runs.
    const uint64_t start_gen = generation_.load(std::memory_order_acquire);
    for (int i = 1; i < n; i++) workers_.emplace_back([this, i, start_gen] { loop(i, start_gen); });
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      quit_ = true;
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  void loop(int index, uint64_t seen) {
    tls_index = index;
    for (;;) {
      // Spin for a while (new work usually follows within microseconds), then sleep.
      int spins = 0;
      while (generation_.load(std::memory_order_acquire) == seen && spins < 20000) spins++;
      if (generation_.load(std::memory_order_acquire) == seen) {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      }
      seen = generation_.load(std::memory_order_acquire);
      if (quit_) return;
      TaskFn fn;
      void* ctx;
      int64_t n;
      int used;
      {
        std::lock_guard<std::mutex> lock(mu_);
        fn = fn_;
        ctx = ctx_;
        n = n_;
        used = used_;
      }
      if (index < used) {
        fn(ctx, range_end(index - 1, n, used), range_end(index, n, used));
        pending_.fetch_sub(1, std::memory_order_acq_rel);
      }
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  bool quit_ = false;
  bool in_job_ = false;
  TaskFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int64_t n_ = 0;
  int used_ = 1;
};

int default_threads() {
  if (const char* env = std::getenv("PLINTH_THREADS")) {
    int n = std::atoi(env);
    if (n >= 1 && n <= 1024) return n;
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

Pool& pool() {
  static Pool* p = new Pool(default_threads());  // never destroyed: workers may outlive static teardown
  return *p;
}

}  // namespace

void parallel_for(int64_t n, TaskFn fn, void* ctx) { pool().run(n, fn, ctx); }
int num_threads() { return pool().size(); }
void set_num_threads(int n) { pool().resize(n < 1 ? default_threads() : n); }
int thread_index() { return tls_index; }

}  // namespace plinth
