//! The fuzz targets (`tutti::fuzz`) on stable: every file of the seed
//! corpus in `fuzz/corpus/<target>/`, then seeded mutations of it (bit
//! flips, byte changes, insertions, deletions, truncations, splices), a
//! few thousand inputs per target. This is CI's short fuzz run; libFuzzer
//! runs the same bodies for as long as one likes (`scripts/fuzz.sh`).
//!
//! `TUTTI_BLESS=1` rewrites the seed files (`seed-*.bin`) from
//! `tutti::fuzz::seed_corpus()`; `TUTTI_FUZZ_ITERS=<n>` sets the number of
//! mutations per target; `TUTTI_SEED=<n>` picks the mutation seed.

use std::path::{Path, PathBuf};

use tutti::fuzz::{seed_corpus, TARGETS};
use tutti::sim::rng::Rng;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

fn mutate(rng: &mut Rng, b: &mut Vec<u8>, other: &[u8]) {
    for _ in 0..rng.range(1, 5) {
        let n = b.len() as u64;
        match rng.below(7) {
            0 if n > 0 => {
                let i = rng.below(n) as usize;
                b[i] ^= 1 << rng.below(8);
            }
            1 if n > 0 => {
                let i = rng.below(n) as usize;
                b[i] = [0, 1, 0x7f, 0x80, 0xff][rng.below(5) as usize];
            }
            2 => {
                let i = rng.below(n + 1) as usize;
                b.insert(i, rng.below(256) as u8);
            }
            3 if n > 0 => {
                let i = rng.below(n) as usize;
                b.remove(i);
            }
            4 => b.truncate(rng.below(n + 1) as usize),
            5 if !other.is_empty() => {
                let at = rng.below(n + 1) as usize;
                let from = rng.below(other.len() as u64) as usize;
                let len = rng.below((other.len() - from) as u64 + 1) as usize;
                b.truncate(at);
                b.extend_from_slice(&other[from..from + len]);
            }
            _ if n >= 2 => {
                let i = rng.below(n - 1) as usize;
                b.swap(i, i + 1);
            }
            _ => b.push(rng.below(256) as u8),
        }
    }
}

#[test]
fn fuzz_targets_on_corpus_and_mutations() {
    let seeds = seed_corpus();
    if std::env::var("TUTTI_BLESS").is_ok_and(|v| v == "1") {
        for (t, _) in TARGETS {
            let dir = corpus_dir(t);
            std::fs::create_dir_all(&dir).unwrap();
            for e in std::fs::read_dir(&dir).unwrap().flatten() {
                if e.file_name().to_string_lossy().starts_with("seed-") {
                    std::fs::remove_file(e.path()).unwrap();
                }
            }
            for (i, (_, b)) in seeds.iter().filter(|(n, _)| n == t).enumerate() {
                std::fs::write(dir.join(format!("seed-{i:03}.bin")), b).unwrap();
            }
        }
    }
    let iters: u64 = std::env::var("TUTTI_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let seed = tutti::sim::seed_from_env().unwrap_or(0x5eed);
    println!("mutation seed {seed}, {iters} inputs per target");
    let mut rng = Rng::new(seed);
    for (name, target) in TARGETS {
        let mut corpus: Vec<Vec<u8>> = Vec::new();
        if let Ok(rd) = std::fs::read_dir(corpus_dir(name)) {
            let mut files: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
            files.sort();
            for f in files {
                corpus.push(std::fs::read(&f).unwrap());
            }
        }
        let on_disk = corpus.len();
        assert!(
            on_disk > 0,
            "no seed corpus for {name}: run with TUTTI_BLESS=1"
        );
        corpus.extend(
            seeds
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, b)| b.clone()),
        );
        for b in &corpus {
            target(b);
        }
        for _ in 0..iters {
            let mut b = corpus[rng.below(corpus.len() as u64) as usize].clone();
            let other = &corpus[rng.below(corpus.len() as u64) as usize];
            mutate(&mut rng, &mut b, other);
            target(&b);
        }
        println!("{name}: {on_disk} corpus files, {iters} mutations");
    }
}
