//! The `latch` binary: see `latch --help`.

/// mimalloc instead of glibc's malloc: with 100,000 connections in use the heap is large and
/// fragmented, and glibc's bin sorting on cold memory cost about 4 µs a request (`perf`, the
/// benchmark's flat-cost run); with mimalloc's per-page free lists the fresh-token rate rose at
/// 100 and at 100,000 connections alike (README, Performance, has the runs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    latch_server::cli::main()
}
