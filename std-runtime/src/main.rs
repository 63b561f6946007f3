//! The `ferry` binary: flags and glue only; the work lives in the library.

fn main() {
    std::process::exit(ferry::cli::main());
}
