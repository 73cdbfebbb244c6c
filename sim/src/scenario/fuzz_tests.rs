//! Fuzzing of the scenario parser: real scenario files with random damage (bytes cut, replaced,
//! inserted) are loaded or refused with the file's name and a reason — never a panic — and a
//! damaged scenario that still loads can be planned (or refused) for any seed. Fixed case count,
//! so `ci/test` spends a bounded time here.

use std::path::Path;

use proptest::prelude::*;

use super::LoadedScenario;

const SWARM: &str = include_str!("../../../scenarios/19-swarm-large.toml");
const MEMORY: &str = include_str!("../../../scenarios/15-memory-huge-query.toml");
const SHUTDOWN: &str = include_str!("../../../scenarios/18-graceful-shutdown.toml");

fn damage(text: &str, edits: &[(usize, u8, u8)]) -> String {
    String::from_utf8_lossy(&fireball::fuzzing::damage(text, edits)).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn damaged_scenarios_load_or_are_refused_with_the_file(
        file in 0..3usize,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..6),
        seed in any::<u64>(),
    ) {
        let text = damage([SWARM, MEMORY, SHUTDOWN][file], &edits);
        match LoadedScenario::parse(&text, Path::new("s.toml")) {
            Ok(loaded) => {
                let _ = crate::plan::plan(&loaded.scenario, seed);
            }
            Err(error) => prop_assert!(error.starts_with("s.toml"), "{}", error),
        }
    }
}
