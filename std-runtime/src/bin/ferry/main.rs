//! The `ferry` binary: flags and glue only; the work lives in the library.

mod cli;
mod output;
mod shell;

fn main() {
    std::process::exit(cli::main());
}
