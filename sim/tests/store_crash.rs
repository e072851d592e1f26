//! The disk store crashed between its writes and their syncs (see `warren_sim::store_check`):
//! a few hundred crashes here; `warren-sim store --seeds N` runs more by hand.

#[test]
fn the_store_keeps_every_synced_message_through_crashes_between_write_and_sync() {
    let mut crashes = 0;
    let mut paged = 0;
    for seed in 1..=40 {
        let stats = warren_sim::store_check::run(seed, 3000).unwrap_or_else(|e| panic!("{e}"));
        crashes += stats.crashes;
        paged += stats.paged_in;
    }
    // The runs did what they are for: many crashes, and queues read back from disk.
    assert!(crashes > 1000, "{crashes} crashes");
    assert!(paged > 1000, "{paged} messages paged in");
}
