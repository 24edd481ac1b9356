// The server allocates and frees many small buffers per request and per email (headers,
// rendered pages, MIME parts, queue frames); mimalloc does that with less CPU than glibc's
// malloc (BENCHMARKS.md, issue 10 step 6).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    latchkey::cli::run()
}
