//! io-gateway: accepts IO messages from a municipality's local systems, validates them,
//! queues them durably and (in later modules) delivers them to IO.
//!
//! `main.rs` only wires the command line to the functions here.

pub mod api;
pub mod audit;
pub mod auth;
pub mod certificates;
pub mod config;
pub mod delivery;
pub mod delivery_gate;
pub mod demo;
pub mod doctor;
pub mod http_server;
pub mod import;
pub mod io_client;
pub mod logging;
pub mod metrics;
pub mod operator;
pub mod queue;
pub mod rate_limit;
pub mod reload;
pub mod sandbox;
pub mod seal;
pub mod secret_file;
pub mod server;
pub mod shutdown;
pub mod signing;
pub mod test_pki;
