//! Figures and their Markdown: medians with min–max, percentiles, and the
//! machine the figures came from.

use std::fmt::Write as _;

/// Repeated measurements of one quantity.
#[derive(Debug, Clone, Default)]
pub struct Samples(Vec<f64>);

impl Samples {
    pub fn push(&mut self, value: f64) {
        self.0.push(value);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn extend(&mut self, other: &Samples) {
        self.0.extend_from_slice(&other.0);
    }

    fn sorted(&self) -> Vec<f64> {
        let mut values = self.0.clone();
        values.sort_by(f64::total_cmp);
        values
    }

    /// The value below which `p` percent of the samples fall (nearest rank).
    pub fn percentile(&self, p: f64) -> f64 {
        let sorted = self.sorted();
        if sorted.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }

    pub fn median(&self) -> f64 {
        self.percentile(50.0)
    }

    pub fn min(&self) -> f64 {
        self.sorted().first().copied().unwrap_or(f64::NAN)
    }

    pub fn max(&self) -> f64 {
        self.sorted().last().copied().unwrap_or(f64::NAN)
    }

    /// The samples mapped through `f` (seconds to a rate, say).
    pub fn map(&self, f: impl Fn(f64) -> f64) -> Samples {
        Samples(self.0.iter().copied().map(f).collect())
    }
}

/// GB/s of `bytes` moved in `seconds`.
pub fn gb_per_s(bytes: u64) -> impl Fn(f64) -> f64 {
    move |seconds| bytes as f64 / seconds / 1e9
}

/// One table row: a name, and a figure as median with min–max.
pub fn row(name: &str, samples: &Samples, unit: &str, decimals: usize) -> String {
    format!(
        "| {name} | {:.decimals$} {unit} | {:.decimals$} – {:.decimals$} {unit} |",
        samples.median(),
        samples.min(),
        samples.max(),
    )
}

pub const TABLE_HEAD: &str = "| measure | median | min – max |\n| --- | --- | --- |";

/// A goal line: the measured figure, the goal, and whether it holds.
pub fn verdict(what: &str, value: f64, goal_text: &str, holds: bool) -> String {
    format!(
        "- {what} = **{value:.2}** (goal {goal_text}): {}",
        if holds { "met" } else { "**not met**" }
    )
}

/// Cores, CPU model, the hashing-relevant CPU flags, memory and kernel.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        cpuinfo
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "unknown".into())
    };
    let flags = field("flags");
    let wanted = [
        "sha_ni", "avx2", "avx512f", "avx512vl", "aes", "ssse3", "sse4_1",
    ];
    let present: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|w| flags.split_whitespace().any(|f| f == *w))
        .collect();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
        })
        .map_or("unknown".into(), |kib| {
            format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0)
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(out, "- cores: {cores}");
    let _ = writeln!(out, "- CPU: {}", field("model name"));
    let _ = writeln!(out, "- flags: {}", present.join(", "));
    let _ = writeln!(out, "- memory: {memory}");
    let _ = write!(out, "- kernel: {kernel}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut s = Samples::default();
        for v in [5.0, 1.0, 4.0, 2.0, 3.0] {
            s.push(v);
        }
        assert_eq!(s.median(), 3.0);
        assert_eq!(s.min(), 1.0);
        assert_eq!(s.max(), 5.0);
        assert_eq!(s.percentile(99.0), 5.0);
        assert_eq!(s.percentile(20.0), 1.0);
    }
}
