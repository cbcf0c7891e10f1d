//! Prometheus metrics: the registry `main` builds and passes down, and its own listener.

pub mod names;
