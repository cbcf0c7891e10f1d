//! Keeping to IO's budget causes no 429: in a test binary of its own, so that the other
//! delivery tests do not starve the scheduler between the gateway's grant and IO's count.

mod support;

use support::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeping_to_the_budget_causes_no_429() {
    let h = harness(
        "rate_limit = { calls = 6, per_seconds = 2 }",
        "",
        "rate_limit = { calls = 6, per_seconds = 2 }",
        // No margin: each call holds its place from its grant until a window after IO's
        // answer, so however the scheduler delays it, IO cannot count more than 6 in 2 s.
        "profile_check = \"never\"\nbudget_margin_ms = 0",
    )
    .await;
    let locations = h.post_many("b", 15, "normal").await;
    h.settle_all(&locations, &["processed"]).await;
    assert_eq!(h.sandbox.stats().throttled, 0, "the gateway never exceeded the budget");
    assert_eq!(h.sandbox.received().len(), 15);
}
