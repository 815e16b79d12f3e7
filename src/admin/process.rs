//! Process metrics read from `/proc/self` at scrape time: CPU seconds,
//! resident and virtual memory, threads, open and maximum file descriptors,
//! start time. Linux only; elsewhere nothing is reported.
//!
//! Clock ticks per second and the page size come from the auxiliary vector
//! (`/proc/self/auxv`), so no libc call (and no `unsafe`) is needed.

use std::fs;

#[derive(Debug, Clone, PartialEq)]
pub struct ProcessSample {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub threads: u64,
    pub start_time_seconds: Option<f64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
}

const AT_PAGESZ: u64 = 6;
const AT_CLKTCK: u64 = 17;

/// Reads the current process' figures; None where /proc is not available.
pub fn sample() -> Option<ProcessSample> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    let (clk_tck, page) = auxv();
    let s = parse_stat(&stat, clk_tck, page)?;
    let start_time_seconds = fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|t| boot_time(&t))
        .map(|boot| boot + s.start_ticks as f64 / clk_tck as f64);
    Some(ProcessSample {
        cpu_seconds: s.cpu_seconds,
        resident_bytes: s.resident_bytes,
        virtual_bytes: s.virtual_bytes,
        threads: s.threads,
        start_time_seconds,
        open_fds: fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as u64),
        max_fds: fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|t| max_open_files(&t)),
    })
}

#[derive(Debug, PartialEq)]
struct Stat {
    cpu_seconds: f64,
    resident_bytes: u64,
    virtual_bytes: u64,
    threads: u64,
    start_ticks: u64,
}

/// Parses `/proc/self/stat`. The command name (field 2) may hold spaces
/// and parentheses, so fields are counted from its last `)`.
fn parse_stat(text: &str, clk_tck: u64, page: u64) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // rest[0] is field 3 (state); field N is rest[N - 3].
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |field: usize| f.get(field - 3)?.parse::<u64>().ok();
    let ticks = num(14)? + num(15)?;
    Some(Stat {
        cpu_seconds: ticks as f64 / clk_tck.max(1) as f64,
        threads: num(20)?,
        start_ticks: num(22)?,
        virtual_bytes: num(23)?,
        resident_bytes: num(24)? * page,
    })
}

fn boot_time(proc_stat: &str) -> Option<f64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn max_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// (clock ticks per second, page size), with Linux' usual values when the
/// auxiliary vector cannot be read.
fn auxv() -> (u64, u64) {
    let mut clk_tck = 100;
    let mut page = 4096;
    if let Ok(bytes) = fs::read("/proc/self/auxv") {
        let word = std::mem::size_of::<usize>();
        let read = |b: &[u8]| -> u64 {
            let mut buf = [0u8; 8];
            if cfg!(target_endian = "little") {
                buf[..word].copy_from_slice(b);
                u64::from_le_bytes(buf)
            } else {
                buf[8 - word..].copy_from_slice(b);
                u64::from_be_bytes(buf)
            }
        };
        for pair in bytes.chunks_exact(2 * word) {
            let (key, value) = (read(&pair[..word]), read(&pair[word..]));
            match key {
                AT_PAGESZ if value > 0 => page = value,
                AT_CLKTCK if value > 0 => clk_tck = value,
                _ => {}
            }
        }
    }
    (clk_tck, page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_a_tricky_name() {
        let line = "4242 (farm gate) (x)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    250 50 0 0 20 0 7 0 123456 104857600 2560 18446744073709551615";
        let s = parse_stat(line, 100, 4096).expect("parses");
        assert_eq!(
            s,
            Stat {
                cpu_seconds: 3.0,
                resident_bytes: 2560 * 4096,
                virtual_bytes: 104_857_600,
                threads: 7,
                start_ticks: 123_456,
            }
        );
    }

    #[test]
    fn parses_limits_and_btime() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 1048576              files\n";
        assert_eq!(max_open_files(limits), Some(1024));
        assert_eq!(boot_time("cpu 1 2 3\nbtime 1700000000\n"), Some(1.7e9));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn samples_this_process() {
        let s = sample().expect("/proc is there on Linux");
        assert!(s.resident_bytes > 0);
        assert!(s.threads >= 1);
        assert!(s.open_fds.expect("fds") >= 3);
        assert!(s.start_time_seconds.expect("start") > 1.0e9);
    }
}
