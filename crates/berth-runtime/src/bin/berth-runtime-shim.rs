//! Test-only stand-in for `berth shim`: the shim entry point as its own binary.

fn main() {
    berth_runtime::shim_main(std::env::args_os().skip(1))
}
