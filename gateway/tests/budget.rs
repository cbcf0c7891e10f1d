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
        // Alone in its test binary, so no other test starves the scheduler; the margin
        // still covers a debug build's delays between our grant and IO's count (500 ms
        // was not enough once in a clean-clone CI run on a slow day: 6 429s, the run
        // taking 13 s instead of 10).
        "profile_check = \"never\"\nbudget_margin_ms = 1000",
    )
    .await;
    let locations = h.post_many("b", 15, "normal").await;
    h.settle_all(&locations, &["processed"]).await;
    assert_eq!(h.sandbox.stats().throttled, 0, "the gateway never exceeded the budget");
    assert_eq!(h.sandbox.received().len(), 15);
}
