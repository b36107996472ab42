//! `loadgen`: see [`booking_loadgen::main`], where the command line is run.

/// With rust_socketio (the reference client) every receipt allocates and frees what it is
/// parsed into, on the runtime's worker threads: glibc's malloc spent about a fifth of the
/// generator's CPU on that (its arena locks included), mimalloc's thread-local heaps much
/// less (see the README's benchmark).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    booking_loadgen::main()
}
