//! What the report says about the machine: architecture, kernel, CPUs, memory, the file
//! system under the test directory (from /proc/mounts) and the io-gateway under test.
//! Everything is read best-effort: a fact that cannot be read says so instead of failing.

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Clone)]
pub struct Machine {
    pub host: String,
    pub arch: &'static str,
    pub kernel: String,
    pub cpus: usize,
    pub cpu_model: String,
    pub memory: String,
    pub dir: PathBuf,
    pub mount: Option<Mount>,
    /// The io-gateway binary and what its `--version` printed.
    pub gateway: Option<(PathBuf, String)>,
}

/// The /proc/mounts entry a directory lives on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: String,
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub options: String,
}

impl Machine {
    /// Reads the machine's facts; `dir` is where the tests write, `binary` the gateway
    /// under test if one was found.
    pub fn collect(dir: &Path, binary: Option<&Path>) -> Machine {
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        Machine {
            host: proc_line("/proc/sys/kernel/hostname").unwrap_or_else(|| "unknown-host".into()),
            arch: std::env::consts::ARCH,
            kernel: proc_line("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into()),
            cpus: std::thread::available_parallelism().map(usize::from).unwrap_or(1),
            cpu_model: cpu_model().unwrap_or_else(|| "unknown".into()),
            memory: meminfo_total().map(|kib| format!("{} MiB", kib / 1024)).unwrap_or_else(|| "unknown".into()),
            mount: mount_of(&mounts, &dir),
            dir,
            gateway: binary.map(|b| (b.to_path_buf(), gateway_version(b))),
        }
    }

    /// The facts as (name, value) rows for the report.
    pub fn facts(&self) -> Vec<(&'static str, String)> {
        let file_system = match &self.mount {
            Some(m) => format!("{} on {}, mounted at {} ({})", m.fs_type, m.source, m.mount_point.display(), m.options),
            None => "unknown (no /proc/mounts entry)".into(),
        };
        let gateway = match &self.gateway {
            Some((path, version)) => format!("{version} ({})", path.display()),
            None => "not used by this test".into(),
        };
        vec![
            ("architecture", self.arch.to_string()),
            ("kernel", self.kernel.clone()),
            ("CPUs", format!("{} ({})", self.cpus, self.cpu_model)),
            ("memory", self.memory.clone()),
            ("test directory", self.dir.display().to_string()),
            ("file system of the test directory", file_system),
            ("io-gateway", gateway),
            ("hw-tests", env!("CARGO_PKG_VERSION").to_string()),
        ]
    }

    /// A fixed machine for unit tests of the report.
    #[cfg(test)]
    pub fn for_tests() -> Machine {
        Machine {
            host: "test-host".into(),
            arch: "x86_64",
            kernel: "6.1.0".into(),
            cpus: 2,
            cpu_model: "test CPU".into(),
            memory: "1024 MiB".into(),
            dir: PathBuf::from("/tmp"),
            mount: None,
            gateway: None,
        }
    }
}

/// `binary --version`, or why it could not be run.
pub fn gateway_version(binary: &Path) -> String {
    match Command::new(binary).arg("--version").output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        Ok(out) => format!("--version failed ({})", out.status),
        Err(e) => format!("cannot run it: {e}"),
    }
}

fn proc_line(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

fn cpu_model() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    // x86 says "model name"; many ARM kernels say "Model" (the board) or only "CPU part".
    ["model name", "Model", "Hardware", "CPU part"].iter().find_map(|key| {
        text.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            (k.trim() == *key).then(|| v.trim().to_string())
        })
    })
}

fn meminfo_total() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    text.lines().find_map(|l| l.strip_prefix("MemTotal:")).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The mount whose mount point is the longest prefix of `dir` (the last such line wins,
/// as later mounts hide earlier ones).
pub fn mount_of(mounts: &str, dir: &Path) -> Option<Mount> {
    let mut best: Option<Mount> = None;
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let [source, mount_point, fs_type, options, ..] = fields[..] else { continue };
        let mount_point = PathBuf::from(unescape(mount_point));
        if !dir.starts_with(&mount_point) {
            continue;
        }
        let longer = best.as_ref().is_none_or(|b| mount_point.as_os_str().len() >= b.mount_point.as_os_str().len());
        if longer {
            best = Some(Mount {
                source: unescape(source),
                mount_point,
                fs_type: fs_type.to_string(),
                options: options.to_string(),
            });
        }
    }
    best
}

/// /proc/mounts writes space, tab, newline and backslash as `\040`-style octal escapes.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal =
            bytes.get(i + 1..i + 4).filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS: &str = "\
/dev/mmcblk0p2 / ext4 rw,noatime 0 0
proc /proc proc rw 0 0
/dev/sda1 /var/lib f2fs rw,relatime 0 0
/dev/sdb1 /media/usb\\040stick vfat rw,sync 0 0
tmpfs /var/lib/tmp tmpfs rw 0 0
";

    fn check(dir: &str, fs_type: &str, mount_point: &str) {
        let mount = mount_of(MOUNTS, Path::new(dir)).unwrap();
        assert_eq!((mount.fs_type.as_str(), mount.mount_point.to_str().unwrap()), (fs_type, mount_point), "{dir}");
    }

    #[test]
    fn finds_the_longest_mount_point_by_whole_components() {
        check("/var/lib/io-gateway", "f2fs", "/var/lib");
        check("/var/library", "ext4", "/");
        check("/var/lib/tmp/x", "tmpfs", "/var/lib/tmp");
        check("/media/usb stick/ledger.txt", "vfat", "/media/usb stick");
        check("/home", "ext4", "/");
    }

    #[test]
    fn this_machine_has_facts() {
        let machine = Machine::collect(Path::new("."), None);
        assert!(machine.cpus >= 1);
        assert!(machine.mount.is_some(), "the current directory is on some mount");
        assert_eq!(machine.facts().len(), 8);
    }
}
