use clap::Parser;

fn main() {
    let cli = berth::cli::Cli::parse();
    let status = berth::commands::run(cli, berth::env::Env::read());
    std::process::exit(status.code());
}
