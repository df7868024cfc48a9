//! `brfed`: parse the line, run the command, turn an error into its exit status (2 bad input,
//! 1 a failed operation). Everything else is in the `brfed_cli` library.

use brfed_cli::args::Cli;
use clap::Parser;
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    // A bug must still end as a named error and an exit status, not a Rust panic report.
    std::panic::set_hook(Box::new(|info| {
        let _ = writeln!(
            std::io::stderr(),
            "error: Internal: brfed failed unexpectedly ({info}); please report it"
        );
        std::process::exit(1);
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: Internal: no async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(brfed_cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "{}", e.render());
            ExitCode::from(e.exit_code())
        }
    }
}
