//! `tars nash …` — placeholder until the tars-nash crate lands.

/// Arguments of `tars nash`.
#[derive(Debug, clap::Args)]
pub struct NashArgs {}

pub fn run(_args: NashArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("tars nash is not built yet: the tars-nash solver crate has not landed")
}

/// `tars bench nash`.
pub fn bench() -> anyhow::Result<()> {
    anyhow::bail!("tars bench nash is not built yet: the tars-nash solver crate has not landed")
}
