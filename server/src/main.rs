//! The `latch` binary: see `latch --help`.

/// mimalloc instead of glibc's malloc: with 100,000 connections in use the heap is large and
/// fragmented, and glibc's bin sorting on cold memory cost about 4 µs a request (`perf`, the
/// benchmark's flat-cost run); mimalloc's per-page free lists raised the fresh-token rate by
/// 7 % at 100 connections and 13 % at 100,000 (README, Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    latch_server::cli::main()
}
