//! Every metric name the gateway exports, in one place (Prometheus conventions: units in
//! the name, `_total` on counters, bounded label values). The Grafana dashboard and the
//! alert rules in `packaging/` use exactly these names.

/// Gauge, always 1: `version`, `arch` (the CPU architecture it was built for).
pub const BUILD_INFO: &str = "io_gateway_build_info";

/// Counter: messages accepted into the queue, by `institution`, `service`, `source`
/// (`api` or `import`).
pub const MESSAGES_ACCEPTED: &str = "io_gateway_messages_accepted_total";
/// Counter: posts the local API refused, by `reason` (`invalid`, `unauthorized`,
/// `forbidden`, `backpressure`, `conflict`, `error`).
pub const MESSAGES_REFUSED: &str = "io_gateway_messages_refused_total";
/// Counter: messages IO accepted (201), by `institution`, `service`.
pub const MESSAGES_SENT: &str = "io_gateway_messages_sent_total";
/// Counter: messages that reached a final state, by `institution`, `service`, `outcome`
/// (the state's name: `processed`, `not_on_io`, `sender_not_allowed`, `rejected_by_io`,
/// `io_rejected`, `io_failed`, `expired`, `unconfirmed`, `cancelled`).
pub const MESSAGES_FINAL: &str = "io_gateway_messages_final_total";
/// Counter: sends whose outcome is unknown (no answer after the request was written),
/// by `institution`, `service`.
pub const AMBIGUOUS_SENDS: &str = "io_gateway_ambiguous_sends_total";

/// Gauge: messages in the queue by `state` and `priority` (`urgent`, `normal`, `bulk`).
pub const QUEUE_MESSAGES: &str = "io_gateway_queue_messages";
/// Gauge: age of the oldest message still waiting to be sent (queued, ambiguous or held);
/// 0 when none waits.
pub const QUEUE_OLDEST_AGE: &str = "io_gateway_queue_oldest_message_age_seconds";

/// Counter: answers from IO by `institution`, `operation` (`profile`, `submit`,
/// `status`) and `code` (the HTTP status, or `none` when no answer came).
pub const IO_RESPONSES: &str = "io_gateway_io_responses_total";
/// Counter: 429 answers from IO, by `institution`.
pub const IO_RATE_LIMITED: &str = "io_gateway_io_rate_limited_total";
/// Histogram: duration of calls to IO, by `operation`.
pub const IO_REQUEST_DURATION: &str = "io_gateway_io_request_duration_seconds";
/// Gauge: Unix time of the last answer from IO, any code (0 before the first).
pub const IO_LAST_CONTACT: &str = "io_gateway_io_last_contact_timestamp_seconds";
/// Gauge: 1 while an institution's circuit breaker is open (IO failing), by `institution`.
pub const IO_CIRCUIT_OPEN: &str = "io_gateway_io_circuit_open";

/// Gauge: calls the institution may make per window, by `institution`.
pub const RATE_BUDGET_CALLS: &str = "io_gateway_rate_budget_calls";
/// Gauge: calls still free in the current window, by `institution`.
pub const RATE_BUDGET_REMAINING: &str = "io_gateway_rate_budget_remaining_calls";
/// Counter: calls made to IO (every call spends budget), by `institution`.
pub const RATE_BUDGET_USED: &str = "io_gateway_rate_budget_used_calls_total";

/// Histogram: from acceptance to IO's 201, by `institution`.
pub const DELIVERY_LATENCY: &str = "io_gateway_delivery_latency_seconds";

/// Counter: rows read by watch-folder imports, by `format` and `result` (`queued`,
/// `duplicate`, `rejected`, `skipped`).
pub const IMPORT_ROWS: &str = "io_gateway_import_rows_total";
/// Counter: files a watch folder finished, by `format` and `result` (`done`, `rejected`).
pub const IMPORT_FILES: &str = "io_gateway_import_files_total";

/// Gauge: the `notAfter` of a certificate as Unix time, by `certificate` (`io_client`,
/// `local_api`).
pub const CERTIFICATE_EXPIRY: &str = "io_gateway_certificate_expiry_timestamp_seconds";
/// Gauge: size of the queue's database files (main file and WAL).
pub const DATABASE_SIZE: &str = "io_gateway_database_size_bytes";
/// Gauge: free space on the database's file system, for unprivileged users.
pub const DISK_FREE: &str = "io_gateway_disk_free_bytes";
/// Gauge: the configured minimum free disk below which new messages are refused.
pub const DISK_FREE_MINIMUM: &str = "io_gateway_disk_free_minimum_bytes";
