//! `sigtrail-docgen`: what `cargo xtask dist` and `cargo xtask install-tools` run once the tools
//! are built (see the library).

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Release bundle and install tree of the sigtrail tools.
#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// Writes sigtrail-VERSION-TARGET.tar.gz and SHA256SUMS into OUT
    Bundle {
        /// Directory holding the six built tools (target/release)
        #[arg(long)]
        bins: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Target triple in the name (default: the host's)
        #[arg(long)]
        target: Option<String>,
    },
    /// Installs the tools, man pages and completions under PREFIX
    Install {
        #[arg(long)]
        bins: PathBuf,
        #[arg(long)]
        prefix: PathBuf,
    },
}

fn main() -> Result<()> {
    match Cli::parse().what {
        What::Bundle { bins, out, target } => {
            let target = match target {
                Some(t) => t,
                None => sigtrail_docgen::host_target()?,
            };
            let tarball = sigtrail_docgen::bundle(&bins, &out, &target)?;
            println!("{}", tarball.display());
        }
        What::Install { bins, prefix } => {
            sigtrail_docgen::install(&bins, &prefix)?;
            println!("{}", prefix.join("bin").display());
        }
    }
    Ok(())
}
