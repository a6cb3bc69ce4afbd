//! The forward pass's worker threads: a persistent pool whose parallel loops cost well under a
//! microsecond to start and to finish.
//!
//! Generation runs a few hundred parallel loops per token, many of them only a few microseconds
//! long (a small matrix-vector product, an attention head split). rayon's fork-join costs about
//! 1.5-2 µs per loop inside its own pool on this 2-core machine and does not speed up a 6 µs
//! loop at all; this pool does the same loop in half the time (see the closing note of the fast
//! kernels issue for the measurement). Its design:
//!
//! - a loop of `n` tasks is published with one epoch bump; each thread owns a contiguous share
//!   of the tasks behind a counter on its own cache line, takes its share first and then takes
//!   what is left of the others' (so a thread slowed by another process holds nobody up);
//! - the caller's thread is one of the pool's threads and waits for the last task by spinning;
//! - idle workers spin for a bounded time (`SPIN`) and then park, so an idle engine uses no CPU.
//!
//! A counter holds the epoch in its high 32 bits, so a worker that wakes late can never take a
//! task of a newer loop with the function of an older one. A loop started from inside a task, or
//! on a thread with no pool installed and no global pool yet, runs on the calling thread alone.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an idle worker spins before it parks.
const SPIN: Duration = Duration::from_micros(200);

/// A value on a cache line of its own.
#[repr(align(128))]
#[derive(Default)]
struct Padded<T>(T);

/// A loop's body as the workers see it (`&dyn Fn(usize)` with its lifetime erased).
type Body = &'static (dyn Fn(usize) + Sync);

/// What the caller and the workers share.
struct Shared {
    /// Bumped once per loop (and once more to shut down).
    epoch: Padded<AtomicU64>,
    /// The current loop's body, in a slot on the caller's stack for the loop's duration.
    body: AtomicPtr<Body>,
    /// Per thread: `epoch << 32 | next task` of its share, and the share's end.
    next: Vec<Padded<AtomicU64>>,
    end: Vec<Padded<AtomicUsize>>,
    /// Tasks of the current loop that are finished (or abandoned after a panic).
    done: Padded<AtomicUsize>,
    /// Set when a task of the current loop panicked.
    panicked: AtomicBool,
    shutdown: AtomicBool,
    /// Held by the thread running a loop (two threads sharing one pool take turns).
    caller: Mutex<()>,
}

impl Shared {
    /// Take one task of loop `epoch` from thread `t`'s share.
    fn take(&self, t: usize, epoch: u64) -> Option<usize> {
        let counter = &self.next[t].0;
        let end = self.end[t].0.load(Ordering::Acquire);
        let mut cur = counter.load(Ordering::Acquire);
        loop {
            if cur >> 32 != epoch & 0xffff_ffff || (cur & 0xffff_ffff) as usize >= end {
                return None;
            }
            match counter.compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some((cur & 0xffff_ffff) as usize),
                Err(now) => cur = now,
            }
        }
    }

    /// Run tasks of loop `epoch`, own share first, then the others', counting them in `count`
    /// as they finish. A panicking task is counted as settled, flagged, and ends the work.
    fn work(&self, me: usize, epoch: u64) {
        let threads = self.next.len();
        let mut count = 0;
        let result = catch_unwind(AssertUnwindSafe(|| {
            for k in 0..threads {
                let t = (me + k) % threads;
                while let Some(i) = self.take(t, epoch) {
                    // SAFETY: a task of `epoch` was taken and is unfinished, so the caller is
                    // still inside `run` for this epoch and the slot holds its body.
                    let body = unsafe { *self.body.load(Ordering::Acquire) };
                    body(i);
                    count += 1;
                }
            }
        }));
        if result.is_err() {
            // The panicking task is settled too.
            count += 1;
            self.panicked.store(true, Ordering::Release);
        }
        self.done.0.fetch_add(count, Ordering::AcqRel);
    }

    /// After a panic: take every task nobody has started, counting them as settled.
    fn abandon(&self, epoch: u64) {
        let mut count = 0;
        for t in 0..self.next.len() {
            while self.take(t, epoch).is_some() {
                count += 1;
            }
        }
        self.done.0.fetch_add(count, Ordering::AcqRel);
    }
}

/// A pool of `threads` threads: the caller's and `threads - 1` workers.
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

thread_local! {
    /// The pool installed on this thread ([`ThreadPool::install`]).
    static CURRENT: Cell<*const ThreadPool> = const { Cell::new(std::ptr::null()) };
    /// Set while this thread runs a task of some pool's loop.
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
}

/// The pool of threads that run where no pool is installed (tests, tools): one thread per CPU.
static GLOBAL: LazyLock<Option<ThreadPool>> = LazyLock::new(|| {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    ThreadPool::new(n).ok()
});

impl ThreadPool {
    /// Start `threads - 1` workers (at least one thread in all).
    pub fn new(threads: usize) -> std::io::Result<ThreadPool> {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            epoch: Padded::default(),
            body: AtomicPtr::new(std::ptr::null_mut()),
            next: (0..threads).map(|_| Padded::default()).collect(),
            end: (0..threads).map(|_| Padded::default()).collect(),
            done: Padded::default(),
            panicked: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            caller: Mutex::new(()),
        });
        let mut pool = ThreadPool {
            shared,
            workers: Vec::new(),
        };
        for me in 1..threads {
            let shared = Arc::clone(&pool.shared);
            let handle = std::thread::Builder::new()
                .name(format!("hearth-worker-{me}"))
                .spawn(move || worker(&shared, me))?;
            pool.workers.push(handle);
        }
        Ok(pool)
    }

    /// Threads of this pool, the caller's included.
    pub fn threads(&self) -> usize {
        self.shared.next.len()
    }

    /// Run `f` with this pool serving the parallel loops it starts on this thread.
    pub fn install<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Restore(*const ThreadPool);
        impl Drop for Restore {
            fn drop(&mut self) {
                CURRENT.with(|c| c.set(self.0));
            }
        }
        let _restore = Restore(CURRENT.with(|c| c.replace(self)));
        f()
    }

    /// `body(i)` for every `i` in `0..n`, over this pool's threads; returns when all are done.
    /// A panic in a task reaches the caller once no task is running any more.
    pub fn run(&self, n: usize, body: &(dyn Fn(usize) + Sync)) {
        let threads = self.threads();
        if threads == 1 || n <= 1 || IN_TASK.with(|t| t.get()) {
            (0..n).for_each(body);
            return;
        }
        assert!(n < 1 << 32, "at most 2^32 tasks per loop");
        let s = &*self.shared;
        let _turn = s.caller.lock().unwrap_or_else(|e| e.into_inner());
        let epoch = s.epoch.0.load(Ordering::Relaxed) + 1;
        // SAFETY (of the erasure): the workers call the body only for tasks of this epoch, and
        // this function returns only once every task of it is settled, so the body and its
        // slot outlive every call.
        let slot: Body = unsafe {
            std::mem::transmute::<&(dyn Fn(usize) + Sync), &'static (dyn Fn(usize) + Sync)>(body)
        };
        s.body
            .store((&slot as *const Body).cast_mut(), Ordering::Release);
        s.done.0.store(0, Ordering::Relaxed);
        s.panicked.store(false, Ordering::Relaxed);
        let tag = (epoch & 0xffff_ffff) << 32;
        for t in 0..threads {
            s.end[t].0.store(n * (t + 1) / threads, Ordering::Relaxed);
            s.next[t]
                .0
                .store(tag | (n * t / threads) as u64, Ordering::Release);
        }
        s.epoch.0.store(epoch, Ordering::Release);
        for w in &self.workers {
            w.thread().unpark();
        }
        in_task(|| s.work(0, epoch));
        let mut spins = 0u32;
        while s.done.0.load(Ordering::Acquire) < n {
            if s.panicked.load(Ordering::Acquire) {
                s.abandon(epoch);
            }
            spins += 1;
            if spins.is_multiple_of(1024) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        s.body.store(std::ptr::null_mut(), Ordering::Release);
        if s.panicked.load(Ordering::Acquire) {
            panic!("a task of a parallel loop panicked");
        }
    }
}

fn in_task<R>(f: impl FnOnce() -> R) -> R {
    IN_TASK.with(|t| t.set(true));
    let r = f();
    IN_TASK.with(|t| t.set(false));
    r
}

fn worker(s: &Shared, me: usize) {
    let mut seen = 0u64;
    loop {
        // Wait for a new loop: spin for a while, then park (`run` unparks every worker).
        let start = Instant::now();
        let mut spins = 0u32;
        let epoch = loop {
            let e = s.epoch.0.load(Ordering::Acquire);
            if e != seen {
                break e;
            }
            spins += 1;
            if spins.is_multiple_of(256) && start.elapsed() > SPIN {
                std::thread::park_timeout(Duration::from_millis(100));
            } else {
                std::hint::spin_loop();
            }
        };
        seen = epoch;
        if s.shutdown.load(Ordering::Acquire) {
            return;
        }
        in_task(|| s.work(me, epoch));
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        let s = &*self.shared;
        s.shutdown.store(true, Ordering::Release);
        s.epoch.0.fetch_add(1, Ordering::AcqRel);
        for w in self.workers.drain(..) {
            w.thread().unpark();
            let _ = w.join();
        }
    }
}

/// The pool serving this thread: the installed one, else the global one.
fn current<R>(f: impl FnOnce(Option<&ThreadPool>) -> R) -> R {
    let p = CURRENT.with(|c| c.get());
    if p.is_null() {
        f(GLOBAL.as_ref())
    } else {
        // SAFETY: `install` keeps the pool borrowed while the pointer is set.
        f(Some(unsafe { &*p }))
    }
}

/// Threads the current pool runs a loop on.
pub fn current_threads() -> usize {
    current(|p| p.map_or(1, ThreadPool::threads))
}

/// `body(i)` for every `i` in `0..n`, over the current pool's threads.
pub fn parallel_for(n: usize, body: impl Fn(usize) + Sync) {
    current(|p| match p {
        Some(p) => p.run(n, &body),
        None => (0..n).for_each(body),
    })
}

/// `body(i, chunk)` for every `chunk`-long piece of `data` (the last may be shorter), in
/// parallel.
pub fn for_each_chunk<T: Send>(
    data: &mut [T],
    chunk: usize,
    body: impl Fn(usize, &mut [T]) + Sync,
) {
    assert!(chunk > 0, "chunks of at least one element");
    let len = data.len();
    let base = SendPtr(data.as_mut_ptr());
    parallel_for(len.div_ceil(chunk), |i| {
        let start = i * chunk;
        let end = (start + chunk).min(len);
        // SAFETY: the chunks are disjoint pieces of `data`, which stays mutably borrowed for the
        // whole loop, and each index runs once.
        let piece = unsafe { std::slice::from_raw_parts_mut(base.get().add(start), end - start) };
        body(i, piece)
    });
}

/// A pointer that may cross threads (the chunks it leads to are disjoint).
struct SendPtr<T>(*mut T);
impl<T> Clone for SendPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SendPtr<T> {}
// SAFETY: used only to hand disjoint chunks of one `&mut [T]` (T: Send) to other threads.
unsafe impl<T: Send> Send for SendPtr<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for SendPtr<T> {}
impl<T> SendPtr<T> {
    fn get(self) -> *mut T {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_once_for_any_thread_count() {
        for threads in [1, 2, 3, 5] {
            let pool = ThreadPool::new(threads).unwrap();
            assert_eq!(pool.threads(), threads);
            for n in [0, 1, 2, 7, 64, 1000] {
                for _ in 0..50 {
                    let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
                    pool.run(n, &|i| {
                        hits[i].fetch_add(1, Ordering::Relaxed);
                    });
                    assert!(
                        hits.iter().all(|h| h.load(Ordering::Relaxed) == 1),
                        "{threads} threads, {n} tasks"
                    );
                }
            }
        }
    }

    #[test]
    fn chunks_cover_the_slice_and_nested_loops_run_inline() {
        let pool = ThreadPool::new(3).unwrap();
        let mut data = vec![0usize; 1001];
        pool.install(|| {
            assert_eq!(current_threads(), 3);
            for_each_chunk(&mut data, 16, |i, c| {
                // A loop inside a task runs on this thread.
                let inner = AtomicUsize::new(0);
                parallel_for(4, |_| {
                    inner.fetch_add(1, Ordering::Relaxed);
                });
                for (k, v) in c.iter_mut().enumerate() {
                    *v = i * 16 + k + inner.load(Ordering::Relaxed);
                }
            })
        });
        assert!(data.iter().enumerate().all(|(k, &v)| v == k + 4));
    }

    #[test]
    fn a_panicking_task_reaches_the_caller_and_the_pool_goes_on() {
        let pool = ThreadPool::new(2).unwrap();
        for _ in 0..20 {
            let r = catch_unwind(AssertUnwindSafe(|| {
                pool.run(64, &|i| {
                    if i == 40 || i == 3 {
                        panic!("task {i}");
                    }
                })
            }));
            assert!(r.is_err());
            let count = AtomicUsize::new(0);
            pool.run(64, &|_| {
                count.fetch_add(1, Ordering::Relaxed);
            });
            assert_eq!(count.load(Ordering::Relaxed), 64);
        }
    }

    #[test]
    fn idle_workers_park_and_wake() {
        let pool = ThreadPool::new(2).unwrap();
        std::thread::sleep(SPIN * 3);
        let count = AtomicUsize::new(0);
        pool.run(10, &|_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 10);
    }
}
