//! `mlpack split`.

use crate::pipeline::{self, SplitOptions};
use crate::Error;
use clap::Args;
use std::path::PathBuf;

/// Flags of `mlpack split`.
#[derive(Debug, Args)]
pub struct SplitArgs {
    /// The .mlpackage to cut.
    package: PathBuf,
    /// The chain directory to create: NN_<name>.mlpackage files and chain.json.
    #[arg(short, long)]
    output: PathBuf,
    /// Largest weight.bin per package: bytes, or with a unit (500MB, 1GB, 1.5GiB; KB/MB/GB are
    /// powers of 1000, KiB/MiB/GiB of 1024). iOS loads at most about 1 GB of weights per model
    /// on the Neural Engine.
    #[arg(long, value_name = "SIZE", default_value = "1GB", value_parser = parse_size)]
    max_weight_size: u64,
}

/// Parses a byte size: a number with an optional unit B, KB, MB, GB, TB (powers of 1000) or
/// KiB, MiB, GiB, TiB (powers of 1024), case-insensitive.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let text = s.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        other => {
            return Err(format!(
                "unknown unit '{other}' in '{s}' (expected B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)"
            ))
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("expected a size such as 1GB or 500MB, got '{s}'"))?;
    let bytes = (value * scale as f64).floor();
    if !(bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(format!("'{s}' is not a positive size"));
    }
    Ok(bytes as u64)
}

/// Runs `mlpack split`.
pub fn execute(args: &SplitArgs, quiet: bool) -> Result<(), Error> {
    let report = pipeline::split(&SplitOptions {
        package: args.package.clone(),
        output: args.output.clone(),
        max_weight_size: args.max_weight_size,
    })?;
    if quiet {
        return Ok(());
    }
    let m = &report.manifest;
    println!(
        "wrote {}: {} packages (weight.bin at most {} bytes each)",
        args.output.display(),
        m.chunks.len(),
        m.max_weight_size
    );
    for c in &m.chunks {
        println!(
            "  {:<32} {:>12} bytes  {:>5} ops  inputs: {}  outputs: {}",
            c.package,
            c.weight_bytes,
            c.ops,
            c.inputs.join(", "),
            c.outputs.join(", ")
        );
    }
    if !report.shared.is_empty() {
        let list: Vec<String> = report
            .shared
            .iter()
            .map(|(name, bytes)| format!("{name} ({bytes} bytes)"))
            .collect();
        println!("copied into several packages: {}", list.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_with_units() {
        assert_eq!(parse_size("123"), Ok(123));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("1.5GiB"), Ok(1_610_612_736));
        assert_eq!(parse_size("64 kib"), Ok(65_536));
        assert_eq!(parse_size("2KB"), Ok(2_000));
    }

    #[test]
    fn bad_sizes() {
        for bad in ["", "GB", "1XB", "-1GB", "0", "1.2.3MB", "0.1B"] {
            assert!(parse_size(bad).is_err(), "{bad} was accepted");
        }
    }
}
