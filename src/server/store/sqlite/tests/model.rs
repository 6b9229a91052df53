//! The model-based concurrency test (`conformance::model`) on SQLite.

use super::store;
use crate::server::store::conformance::model::{check_concurrent, op_strategy};

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 12,
        .. proptest::prelude::ProptestConfig::default()
    })]

    #[test]
    fn concurrent_writes_match_model(
        tasks in proptest::collection::vec(proptest::collection::vec(op_strategy(), 1..12), 8)
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (_dir, s) = store();
            check_concurrent(s.clone(), tasks).await;
            s.close().await;
        });
    }
}
