//! `all`: every test in turn with short durations (shorter still with `--quick`), into
//! one report. A test that cannot run is reported as such and the others still run.

use crate::power_cut::{self, SimulateOptions};
use crate::report::Section;
use crate::soak::{self, SoakOptions};
use crate::storage::{self, StorageOptions};
use crate::tls::{self, TlsOptions};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct SuiteOptions {
    pub binary: PathBuf,
    pub dir: PathBuf,
    pub quick: bool,
    pub keep: bool,
    pub max_rss_mib: u64,
    pub fs_type: Option<String>,
}

/// The durations and sizes of one suite run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    pub storage: Duration,
    pub soak: Duration,
    pub soak_rate: f64,
    pub tls: Duration,
    pub power_cut_count: u64,
}

impl Plan {
    pub fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                storage: Duration::from_secs(1),
                soak: Duration::from_secs(10),
                soak_rate: 10.0,
                tls: Duration::from_secs(2),
                power_cut_count: 200,
            }
        } else {
            Plan {
                storage: Duration::from_secs(10),
                soak: Duration::from_secs(5 * 60),
                soak_rate: 5.0,
                tls: Duration::from_secs(10),
                power_cut_count: 2000,
            }
        }
    }
}

/// The defaults the single commands share with the suite.
pub mod defaults {
    pub const MIN_FSYNCS_PER_SECOND: f64 = 50.0;
    pub const MIN_COMMITS_PER_SECOND: f64 = 50.0;
    pub const MAX_COMMIT_P99_MS: u64 = 250;
    pub const MAX_RSS_MIB: u64 = 100;
    pub const MIN_HANDSHAKES_PER_SECOND: f64 = 50.0;
    pub const POSTING_CLIENTS: usize = 4;
}

pub fn run(options: &SuiteOptions) -> Vec<Section> {
    let plan = Plan::new(options.quick);
    let mut sections = Vec::new();
    let storage = StorageOptions {
        dir: options.dir.clone(),
        duration: plan.storage,
        min_fsyncs_per_second: defaults::MIN_FSYNCS_PER_SECOND,
        min_commits_per_second: defaults::MIN_COMMITS_PER_SECOND,
        max_commit_p99: Duration::from_millis(defaults::MAX_COMMIT_P99_MS),
        fs_type: options.fs_type.clone(),
    };
    sections.push(storage::run(&storage).unwrap_or_else(|e| Section::could_not_run("Storage", &e)));
    let soak = SoakOptions {
        binary: options.binary.clone(),
        dir: options.dir.clone(),
        duration: plan.soak,
        rate: plan.soak_rate,
        max_rss_mib: options.max_rss_mib,
        keep: options.keep,
    };
    sections.push(soak::run(&soak).unwrap_or_else(|e| Section::could_not_run("Soak", &e)));
    let tls = TlsOptions {
        binary: options.binary.clone(),
        dir: options.dir.clone(),
        duration: plan.tls,
        clients: std::thread::available_parallelism().map(usize::from).unwrap_or(1),
        min_handshakes_per_second: defaults::MIN_HANDSHAKES_PER_SECOND,
    };
    sections.push(tls::run(&tls).unwrap_or_else(|e| Section::could_not_run("TLS", &e)));
    sections.push(power_cut_simulation(options, plan.power_cut_count));
    sections
}

fn power_cut_simulation(options: &SuiteOptions, count: u64) -> Section {
    let title = "Power cut, simulated with kill -9";
    let scratch = match tempfile::Builder::new().prefix("hw-power-cut-").tempdir_in(&options.dir) {
        Ok(scratch) => scratch,
        Err(e) => return Section::could_not_run(title, &e),
    };
    let simulate = SimulateOptions {
        binary: options.binary.clone(),
        dir: scratch.path().to_path_buf(),
        count,
        clients: defaults::POSTING_CLIENTS,
    };
    let section = power_cut::simulate(&simulate).unwrap_or_else(|e| Section::could_not_run(title, &e));
    if options.keep {
        let _ = scratch.keep();
    }
    section
}
