//! io-gateway's hardware tests, run by `io-gateway-hw-tests` on the real appliance (and
//! here, on local disk, so they are known to work): storage fsync and SQLite commit rate,
//! a soak against the IO sandbox with a memory ceiling, the TLS handshake rate, and the
//! power-cut procedure. Each test returns a report `Section`; `main.rs` only wires the
//! command line to them and writes the report.

pub mod binary;
pub mod daemon;
pub mod http_client;
pub mod latency;
pub mod machine;
pub mod memory;
pub mod power_cut;
pub mod queue_file;
pub mod report;
pub mod setup;
pub mod soak;
pub mod storage;
pub mod suite;
pub mod tls;
