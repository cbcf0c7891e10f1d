//! Domain values and registry-file readers for io-gateway.
//!
//! `domain` holds the validated newtypes both crates pass around (a value that exists
//! is valid). Readers for local registry formats arrive one module per format; they take
//! bytes or a reader and return typed records plus per-line errors, never doing I/O of
//! their own.

pub mod anpr;
pub mod campaign;
pub mod csv_text;
pub mod domain;
pub mod govpay;
pub mod gpd;
pub mod mapped_csv;
pub mod message;
pub mod payment;
pub mod template;
