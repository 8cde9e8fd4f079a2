//! Test-only stand-in for `berth shim`: berth-runtime's shim entry point as its own binary,
//! for the agent's integration tests (the real product runs `berth shim`).

fn main() {
    berth_runtime::shim_main(std::env::args_os().skip(1))
}
